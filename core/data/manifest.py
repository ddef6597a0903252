"""A dataset described by a manifest CSV that points at files, one column per modality:

    image,depth,label,split
    scans/0001.png,depth/0001.npy,3,train
    scans/0002.png,,1,test          <- no depth for this sample

Cells are paths relative to the manifest's folder (they may not leave it): images (.png, .jpg)
or one `.npy` array per sample; an empty cell is a missing modality. Optional columns: `label`
(integer class) and `split`. Files are read batch by batch (core/data/rows.py), never all at
once. Shapes and likelihoods come from a `dataset.json` beside the manifest (`modalities`, and
`transforms`) when present, else from the first file of each column: images [C, H, W] at their
own size (others are resized and centre-cropped to it) with values scaled to [0, 1].
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.dataset import DatasetError
from core.data.images import ImageFiles
from core.data.rows import ArrayRows

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
RESERVED = ("label", "split")


class NpyFiles:
    """Rows of one `.npy` file per sample, each of `shape` (never unpickled); None reads zeros."""

    def __init__(self, paths: list[Path | None], shape: tuple[int, ...]) -> None:
        self.paths, self.shape = paths, (len(paths), *shape)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.zeros((len(rows), *self.shape[1:]), dtype=np.float32)
        for i, row in enumerate(rows):
            path = self.paths[row]
            if path is None:
                continue
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise DatasetError(f"{path.name}: not a readable .npy array ({error})") from None
            if array.shape != self.shape[1:]:
                raise DatasetError(
                    f"{path.name}: shape {list(array.shape)}, expected {list(self.shape[1:])}"
                )
            out[i] = array
        return out


def _resolve(folder: Path, cell: str, line: int, column: str) -> Path | None:
    """The file a cell names, inside `folder`; None for an empty cell."""
    if not cell.strip():
        return None
    path = (folder / cell.strip()).resolve()
    if os.path.isabs(cell.strip()) or not path.is_relative_to(folder.resolve()):
        raise DatasetError(f"line {line}, {column}: {cell!r} leaves the manifest's folder")
    if not path.is_file():
        raise DatasetError(f"line {line}, {column}: {cell.strip()} does not exist")
    return path


def _first_shape(column: str, paths: list[Path | None]) -> tuple[str, tuple[int, ...]]:
    """(kind, per-sample shape) of a column from its first file."""
    first = next((p for p in paths if p is not None), None)
    if first is None:
        raise DatasetError(f"{column}: no sample has a file")
    if first.suffix.lower() in IMAGE_SUFFIXES:
        from PIL import Image

        with Image.open(first) as image:
            channels = 1 if image.mode in ("L", "1", "I;16") else 3
            return "image", (channels, image.height, image.width)
    if first.suffix.lower() == ".npy":
        return "vector", tuple(np.load(first, allow_pickle=False, mmap_mode="r").shape)
    raise DatasetError(f"{column}: {first.name} is neither an image ({IMAGE_SUFFIXES}) nor .npy")


def splits_of(manifest: Path) -> set[str]:
    """The values of a manifest's `split` column (none without one)."""
    with manifest.open(newline="") as f:
        return {(row.get("split") or "").strip() for row in csv.DictReader(f)} - {""}


def load_manifest(
    manifest: str | os.PathLike, split: str | None = None, root: str | os.PathLike | None = None
) -> ArrayRows:
    """The samples of a manifest CSV (all, or those whose `split` column is `split`); its
    cells name files inside `root` (default: the manifest's folder, where an uploaded manifest
    is stored apart from the files it names)."""
    manifest = Path(manifest)
    folder = Path(root) if root is not None else manifest.parent
    with manifest.open(newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in reader.fieldnames or [] if c not in RESERVED]
        rows = [(i, row) for i, row in enumerate(reader, start=2)]
    if not columns:
        raise DatasetError(f"{manifest.name}: no modality columns (besides {list(RESERVED)})")
    chosen = [split is None or (r.get("split") or "").strip() == split for _, r in rows]
    if not any(chosen):
        raise DatasetError(f"split {split!r}: no row of {manifest.name} has it")
    config: dict[str, Any] = {}
    if (folder / "dataset.json").is_file():
        config = json.loads((folder / "dataset.json").read_text())
    declared = {s["name"]: s for s in config.get("modalities", [])}
    sources, masks, specs, transforms = {}, {}, [], {}
    for column in columns:
        every = [_resolve(folder, row.get(column) or "", i, column) for i, row in rows]
        kind, shape = _first_shape(column, every)  # from all rows, so a split agrees with others
        paths = [p for p, keep in zip(every, chosen, strict=True) if keep]
        spec = declared.get(column) or {
            "name": column, "shape": list(shape), "kind": kind,
            **({"value_range": [0, 1], "likelihood": {"kind": "laplace", "scale": 0.1}}
               if kind == "image" else {"likelihood": {"kind": "normal"}}),
        }  # fmt: skip
        if kind == "image":
            sources[column] = ImageFiles(paths, tuple(spec["shape"]))
            transforms[column] = [{"kind": "scale", "factor": 1 / 255}]
        else:
            sources[column] = NpyFiles(paths, tuple(spec["shape"]))
        transforms[column] = transforms.get(column, []) + config.get("transforms", {}).get(
            column, []
        )
        masks[column] = torch.tensor([p is not None for p in paths])
        specs.append(spec)
    labels = None
    if any("label" in row for _, row in rows):
        try:
            labels = np.array(
                [int(row["label"]) for (_, row), k in zip(rows, chosen, strict=True) if k]
            )
        except (TypeError, ValueError):
            raise DatasetError(
                f"{manifest.name}: the label column must hold integer classes"
            ) from None
    metadata = {"source": str(manifest), "split": split}
    return ArrayRows(
        sources, masks=masks, labels=labels, transforms=transforms, specs=specs, metadata=metadata
    )
