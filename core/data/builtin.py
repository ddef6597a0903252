"""Built-in datasets (no download) and modality specs for built-in and user datasets.

`digits`: scikit-learn's bundled 8x8 handwritten digits (1797 samples, 10 classes), with two
modalities: `image` [1, 8, 8] float32 in [0, 1] (pixel / 16) and `label`, the class one-hot
[10] float32; `labels` holds the class index. Split (fixed, so results are comparable):
`train_test_split(range(1797), test_size=0.2, random_state=0, stratify=y)` gives 1437 train and
360 test samples with the class proportions of the whole set; each split keeps the original
order of `load_digits()` (indices sorted). "all" is every sample in that order.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable

import numpy as np
import torch

from core.data.dataset import DatasetError, MultimodalDataset

SPLITS = ("train", "test", "all")


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> dict[str, np.ndarray]:
    """Loaded once per process; loaders copy out of these arrays."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    y = digits.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=0, stratify=y)
    return {
        "image": (digits.images / 16.0).astype(np.float32)[:, None],
        "label": np.eye(10, dtype=np.float32)[y],
        "labels": y,
        "train": np.sort(train),
        "test": np.sort(test),
        "all": np.arange(len(y)),
    }


def _load_digits(split: str) -> MultimodalDataset:
    arrays = _digits_arrays()
    idx = arrays[split]
    return MultimodalDataset(
        {m: torch.from_numpy(arrays[m][idx]) for m in ("image", "label")},
        labels=torch.from_numpy(arrays["labels"][idx]),
        metadata={"source": "builtin:digits", "split": split},
    )


BUILTIN_DATASETS: dict[str, Callable[[str], MultimodalDataset]] = {"digits": _load_digits}

# Images with values in [0, 1]: Laplace(0.1) decoders, outputs clamped to the data range.
_UNIT_IMAGE = {"likelihood": {"kind": "laplace", "scale": 0.1}, "value_range": [0.0, 1.0]}

_BUILTIN_MODALITIES: dict[str, list[dict]] = {
    "digits": [
        # Laplace(0.1), not Bernoulli: on these grey 8x8 images a Bernoulli likelihood leaves so
        # little to reconstruct that the KL term collapses the posterior (README, "digits").
        {"name": "image", "shape": [1, 8, 8], "kind": "image", **_UNIT_IMAGE},
        {
            "name": "label",
            "shape": [10],
            "kind": "categorical",
            "likelihood": {"kind": "categorical"},
        },
    ]
}


def _check_name(name: str) -> None:
    if name not in BUILTIN_DATASETS:
        known = ", ".join(sorted(BUILTIN_DATASETS))
        raise ValueError(f"dataset {name!r}: not a built-in dataset; known: {known}")


def load_builtin(name: str, split: str = "train") -> MultimodalDataset:
    """A fresh dataset object for the built-in `name` and `split` ("train", "test" or "all")."""
    _check_name(name)
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    return BUILTIN_DATASETS[name](split)


def builtin_modalities(name: str) -> list[dict]:
    """ModalitySpec-compatible dicts for the built-in `name` (a copy; safe to modify)."""
    _check_name(name)
    return copy.deepcopy(_BUILTIN_MODALITIES[name])


def infer_modalities(dataset: MultimodalDataset) -> list[dict]:
    """ModalitySpec-compatible dicts guessed from a dataset's shapes and observed values.

    [1 or 3, H, W] → image: Laplace(0.1) clamped to [0, 1] when values lie there (Bernoulli
    tends to collapse the posterior on grey images), else normal; 1-D with every observed row
    one-hot → categorical; anything else → vector with a normal likelihood.
    """
    specs = []
    for name, x in dataset.data.items():
        shape = list(x.shape[1:])
        if len(shape) > 3:
            raise DatasetError(f"{name}: samples of shape {shape} have more than 3 dimensions")
        seen = x[dataset.masks[name]]
        if len(shape) == 3 and shape[0] in (1, 3):
            in_unit = bool(((seen >= 0) & (seen <= 1)).all())
            spec = {
                "kind": "image",
                **copy.deepcopy(_UNIT_IMAGE if in_unit else {"likelihood": {"kind": "normal"}}),
            }
        elif len(shape) == 1 and shape[0] >= 2 and len(seen) and _one_hot(seen):
            spec = {"kind": "categorical", "likelihood": {"kind": "categorical"}}
        else:
            spec = {"kind": "vector", "likelihood": {"kind": "normal"}}
        specs.append({"name": name, "shape": shape, **spec})
    return specs


def _one_hot(rows: torch.Tensor) -> bool:
    return bool((((rows == 0) | (rows == 1)).all() and (rows.sum(1) == 1).all()).item())


def resolve_dataset(reference: str, split: str = "train") -> MultimodalDataset:
    """The dataset a job or request names: for now only built-in names are known."""
    return load_builtin(reference, split)
