"""Built-in `digits`: shapes, values, the fixed stratified split; modality specs and inference."""

import numpy as np
import pytest
import torch

from core.data import (
    BUILTIN_DATASETS,
    MultimodalDataset,
    builtin_modalities,
    infer_modalities,
    load_builtin,
    resolve_dataset,
)
from core.models import ModalitySpec


def test_digits_shapes_values_and_labels():
    ds = load_builtin("digits")
    assert ds.shapes == {"image": (1, 8, 8), "label": (10,)}
    assert ds.data["image"].dtype == torch.float32
    assert ds.data["image"].min() == 0 and ds.data["image"].max() == 1
    assert torch.equal(ds.data["label"].argmax(1), ds.labels)
    assert (ds.data["label"].sum(1) == 1).all()
    assert all(k.all() for k in ds.masks.values())
    assert ds.metadata == {"source": "builtin:digits", "split": "train"}


def test_digits_split_sizes_disjoint_and_stratified():
    train, test, full = (load_builtin("digits", s) for s in ("train", "test", "all"))
    assert (len(train), len(test), len(full)) == (1437, 360, 1797)
    # The two splits partition the full set: every image appears exactly once.
    rows = torch.cat([train.data["image"], test.data["image"]]).flatten(1)
    assert torch.equal(rows.sort(0).values, full.data["image"].flatten(1).sort(0).values)
    all_counts = np.bincount(full.labels.numpy(), minlength=10)
    test_counts = np.bincount(test.labels.numpy(), minlength=10)
    assert np.abs(test_counts - all_counts * 0.2).max() <= 1
    assert np.array_equal(np.bincount(train.labels.numpy(), minlength=10) + test_counts, all_counts)


def test_digits_is_deterministic_and_fresh():
    a, b = load_builtin("digits", "test"), load_builtin("digits", "test")
    assert torch.equal(a.data["image"], b.data["image"]) and torch.equal(a.labels, b.labels)
    a.data["image"].add_(1)
    a.labels.add_(1)
    a.metadata["x"] = 1
    c = load_builtin("digits", "test")
    assert torch.equal(b.data["image"], c.data["image"]) and torch.equal(b.labels, c.labels)
    assert "x" not in c.metadata


def test_unknown_name_or_split():
    with pytest.raises(ValueError, match="known: digits"):
        load_builtin("mnist")
    with pytest.raises(ValueError, match="expected one of train, test, all"):
        load_builtin("digits", "valid")
    with pytest.raises(ValueError, match="not a built-in dataset"):
        resolve_dataset("my-upload")
    assert len(resolve_dataset("digits", "test")) == 360
    assert "digits" in BUILTIN_DATASETS


def test_builtin_modalities_are_modality_specs_and_match_inference():
    specs = builtin_modalities("digits")
    image = {"name": "image", "shape": [1, 8, 8], "kind": "image"}
    label = {"name": "label", "shape": [10], "kind": "categorical"}
    assert specs == [
        image | {"likelihood": {"kind": "laplace", "scale": 0.1}, "value_range": [0.0, 1.0]},
        label | {"likelihood": {"kind": "categorical"}},
    ]
    for spec in specs:
        ModalitySpec(**spec)
    specs[0]["shape"][0] = 3
    assert builtin_modalities("digits")[0]["shape"] == [1, 8, 8]
    assert infer_modalities(load_builtin("digits")) == builtin_modalities("digits")


def test_infer_modalities_for_user_data():
    n = 6
    onehot = torch.eye(4)[torch.arange(n) % 4]
    not_onehot = onehot.clone()
    not_onehot[0, 1] = 0.5
    ds = MultimodalDataset(
        {
            "rgb": torch.rand(n, 3, 4, 4) * 2 - 0.5,
            "cls": onehot,
            "soft": not_onehot,
            "grid": torch.rand(n, 5, 4, 4),
            "x": torch.randn(n, 7),
        },
        {"cls": torch.tensor([True, False] * 3), "x": torch.ones(n, dtype=torch.bool)},
    )
    kinds = {s["name"]: (s["kind"], s["likelihood"]["kind"]) for s in infer_modalities(ds)}
    assert kinds == {
        "rgb": ("image", "normal"),
        "cls": ("categorical", "categorical"),
        "soft": ("vector", "normal"),
        "grid": ("vector", "normal"),
        "x": ("vector", "normal"),
    }
    for spec in infer_modalities(ds):
        ModalitySpec(**spec)
