"""Manifest CSVs pointing at files: modalities from image and .npy columns, missing cells,
labels, splits, dataset.json specs, and paths that may not leave the manifest's folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.data import DatasetError
from core.data.manifest import load_manifest
from core.data.open import has_split, modality_specs, open_dataset


def write_manifest(root: Path, rows: list[str], header: str = "image,depth,label,split") -> Path:
    (root / "scans").mkdir(parents=True, exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    for i in range(4):
        Image.fromarray(np.full((6, 4), 50 * i, dtype=np.uint8), "L").save(
            root / "scans" / f"{i}.png"
        )
        np.save(root / "depth" / f"{i}.npy", np.full((3,), float(i), dtype=np.float32))
    (root / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    return root / "manifest.csv"


ROWS = [
    "scans/0.png,depth/0.npy,0,train",
    "scans/1.png,,1,train",
    ",depth/2.npy,2,test",
    "scans/3.png,depth/3.npy,1,train",
]


def test_columns_become_modalities_read_batch_by_batch(tmp_path: Path) -> None:
    data = load_manifest(write_manifest(tmp_path, ROWS))
    assert data.modalities == ["image", "depth"] and data.shapes == {
        "image": (1, 6, 4),
        "depth": (3,),
    }
    batch = data.batch()
    assert torch.allclose(batch.data["image"][:, 0, 0, 0], torch.tensor([0, 50, 0, 150]) / 255)
    assert torch.equal(batch.masks["image"], torch.tensor([True, True, False, True]))
    assert torch.equal(batch.data["depth"][:, 0], torch.tensor([0.0, 0.0, 2.0, 3.0]))
    assert torch.equal(batch.masks["depth"], torch.tensor([True, False, True, True]))
    assert torch.equal(batch.labels, torch.tensor([0, 1, 2, 1]))
    specs = {s["name"]: s for s in data.modality_specs()}
    assert specs["image"]["kind"] == "image" and specs["depth"]["likelihood"]["kind"] == "normal"


def test_splits_and_the_open_dataset_reference(tmp_path: Path) -> None:
    manifest = str(write_manifest(tmp_path, ROWS))
    assert has_split(manifest, "test") and not has_split(manifest, "valid")
    train, test = open_dataset(manifest, "train"), open_dataset(manifest, "test")
    assert torch.equal(train.labels, torch.tensor([0, 1, 1])) and len(test) == 1
    assert [s["name"] for s in modality_specs(manifest, train)] == ["image", "depth"]


def test_dataset_json_declares_shapes_and_transforms(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path, ROWS)
    specs = [{"name": "image", "shape": [3, 8, 8], "kind": "image"}]
    transforms = {"depth": [{"kind": "scale", "factor": 2.0}]}
    (tmp_path / "dataset.json").write_text(
        json.dumps({"modalities": specs, "transforms": transforms})
    )
    batch = load_manifest(manifest).batch()
    assert batch.data["image"].shape == (4, 3, 8, 8)  # resized, made RGB
    assert torch.equal(batch.data["depth"][3], torch.full((3,), 6.0))


def test_cells_may_not_leave_the_folder_or_name_missing_files(tmp_path: Path) -> None:
    (tmp_path / "secret.npy").write_bytes(b"x")
    inside = tmp_path / "data"
    escaping = write_manifest(inside, ["../secret.npy,depth/0.npy,0,train"])
    with pytest.raises(DatasetError, match=r"line 2, image: '\.\./secret\.npy' leaves"):
        load_manifest(escaping)
    absolute = write_manifest(inside, [f"{tmp_path / 'secret.npy'},depth/0.npy,0,train"])
    with pytest.raises(DatasetError, match="leaves the manifest's folder"):
        load_manifest(absolute)
    missing = write_manifest(inside, ["scans/9.png,depth/0.npy,0,train"])
    with pytest.raises(DatasetError, match=r"line 2, image: scans/9\.png does not exist"):
        load_manifest(missing)
    labels = write_manifest(inside, ["scans/0.png,depth/0.npy,cat,train"])
    with pytest.raises(DatasetError, match="label column must hold integer classes"):
        load_manifest(labels)
    np.save(inside / "depth" / "1.npy", np.zeros((5,)))
    wrong = write_manifest(
        inside, ["scans/0.png,depth/0.npy,0,train", "scans/1.png,depth/1.npy,0,train"]
    )
    np.save(inside / "depth" / "1.npy", np.zeros((5,)))
    with pytest.raises(DatasetError, match=r"1\.npy: shape \[5\], expected \[3\]"):
        load_manifest(wrong).batch()
