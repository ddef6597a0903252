"""A dataset stored in a folder, one `.npy` array per modality, that reads only the rows of each
batch: data larger than memory trains with bounded memory.

    root/
      dataset.json        {"modalities": [ModalitySpec, ...], "transforms": {name: [...]},
                           "splits": {"train": [start, stop] | "split__train.npy"}}  (all optional)
      <modality>.npy      [N, *shape], any numeric dtype (uint8 images: a `scale` transform)
      mask__<modality>.npy  bool [N] (optional: all observed)
      labels.npy          int [N] (optional)

Rows are read with positioned reads (`os.pread`) into fresh buffers, coalescing runs of adjacent
rows, rather than memory-mapped: mapped pages would count in the process's resident memory until
the kernel reclaims them. Masks and labels (a few bytes per sample) are held in memory, so
missingness generators and splits work as on `MultimodalDataset`. Loading never unpickles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.data import transforms as tf
from core.data.dataset import DatasetError, MultimodalDataset
from core.data.rows import RowDataset

CONFIG = "dataset.json"
MASK_PREFIX, SPLIT_PREFIX, LABELS = "mask__", "split__", "labels"
_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}


class NpyRows:
    """Rows of a C-ordered `.npy` file read on demand (never the whole array)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with open(path, "rb") as f:
            try:
                version = np.lib.format.read_magic(f)
                read_header = _HEADER_READERS.get(version)
                if read_header is None:
                    raise ValueError(f"format version {version} (1.0 and 2.0 are read)")
                shape, fortran, dtype = read_header(f)
            except ValueError as error:
                raise DatasetError(f"{path.name}: not a readable .npy array ({error})") from None
            self.offset = f.tell()
        if dtype.hasobject:
            raise DatasetError(f"{path.name}: object arrays are refused (they need unpickling)")
        if fortran or len(shape) < 1:
            raise DatasetError(f"{path.name}: expected a C-ordered [N, ...] array")
        self.shape, self.dtype = tuple(shape), dtype
        self.row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        expected = self.offset + shape[0] * self.row_bytes
        if path.stat().st_size < expected:
            raise DatasetError(
                f"{path.name}: truncated ({path.stat().st_size} of {expected} bytes)"
            )
        self.fd = os.open(path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows at sorted indices `rows`, one read per run of consecutive rows."""
        out = np.empty((len(rows), *self.shape[1:]), dtype=self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for run in np.split(np.arange(len(rows)), breaks):
            if len(run) == 0:
                continue
            first, size = int(rows[run[0]]), len(run) * self.row_bytes
            chunk = os.pread(self.fd, size, self.offset + first * self.row_bytes)
            flat[run[0] : run[-1] + 1] = np.frombuffer(chunk, np.uint8).reshape(len(run), -1)
        return out

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers reopen the file
        return {k: v for k, v in self.__dict__.items() if k != "fd"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.fd = os.open(self.path, os.O_RDONLY)

    def __del__(self) -> None:
        if getattr(self, "fd", None) is not None:
            os.close(self.fd)
            self.fd = None


def _small_array(path: Path, what: str, n: int) -> np.ndarray:
    """A mask, label or split array, loaded whole (never unpickled)."""
    array = np.load(path, allow_pickle=False)
    if what != "split" and array.shape != (n,):
        raise DatasetError(f"{path.name}: expected shape [{n}], got {list(array.shape)}")
    return array


class ArrayFolder(RowDataset):
    """The samples of a folder (the module docstring's layout), optionally one split of it;
    `augment` turns its augmenting transforms on (a training split)."""

    def __init__(
        self, root: str | os.PathLike, split: str | None = None, augment: bool = False
    ) -> None:
        self.root, self.augment = Path(root), augment
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: not a folder")
        self.config: dict[str, Any] = {}
        if (self.root / CONFIG).is_file():
            try:
                self.config = json.loads((self.root / CONFIG).read_text())
            except json.JSONDecodeError as error:
                raise DatasetError(f"{CONFIG}: not valid JSON ({error})") from None
        names = [spec["name"] for spec in self.config.get("modalities", [])] or sorted(
            p.stem
            for p in self.root.glob("*.npy")
            if not p.stem.startswith((MASK_PREFIX, SPLIT_PREFIX)) and p.stem != LABELS
        )
        if not names:
            raise DatasetError(f"{self.root}: no <modality>.npy arrays")
        self.arrays = {m: NpyRows(self._file(f"{m}.npy")) for m in names}
        n = len(next(iter(self.arrays.values())))
        for m, rows in self.arrays.items():
            if len(rows) != n or len(rows.shape) < 2:
                raise DatasetError(f"{m}.npy: expected shape [{n}, ...], got {list(rows.shape)}")
        self.transforms = {
            m: tf.parse_transforms(self.config.get("transforms", {}).get(m)) for m in names
        }
        for m, rows in self.arrays.items():  # transforms that cannot take the samples: now
            try:
                tf.output_shape(self.transforms[m], rows.shape[1:])
            except ValueError as error:
                raise DatasetError(f"{CONFIG}: transforms of {m}: {error}") from None
        self.rows = self._split_rows(split, n)
        masks = {
            m: torch.from_numpy(_small_array(p, "mask", n).astype(bool))
            if (p := self.root / f"{MASK_PREFIX}{m}.npy").is_file()
            else torch.ones(n, dtype=torch.bool)
            for m in names
        }
        self.masks = {m: k[self.rows] for m, k in masks.items()}
        path = self.root / f"{LABELS}.npy"
        labels = _small_array(path, "labels", n) if path.is_file() else None
        if labels is not None and not np.issubdtype(labels.dtype, np.integer):
            raise DatasetError(f"{LABELS}.npy: expected integer class labels, got {labels.dtype}")
        self.labels = (
            None if labels is None else torch.from_numpy(labels.astype(np.int64))[self.rows]
        )
        self.index = {m: None for m in names}
        self.specs = self.config.get("modalities")
        self.metadata = {"source": str(self.root), "split": split}
        self._check_observed()

    def _file(self, name: str) -> Path:
        if Path(name).name != name or name.startswith("."):  # dataset.json names files here only
            raise DatasetError(f"{CONFIG}: {name!r} is not a file name of this folder")
        path = self.root / name
        if not path.is_file():
            raise DatasetError(f"{self.root}: {name} is missing")
        return path

    def _split_rows(self, split: str | None, n: int) -> Tensor:
        if split is None:
            return torch.arange(n)
        splits = self.config.get("splits", {})
        if split not in splits:
            raise DatasetError(f"split {split!r}: unknown; {CONFIG} names {sorted(splits)}")
        where = splits[split]
        if isinstance(where, str):
            rows = _small_array(self._file(where), "split", n)
            if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
                raise DatasetError(f"{where}: expected a 1-D integer array of row indices")
        else:
            rows = np.arange(*where)
        if len(rows) == 0 or rows.min() < 0 or rows.max() >= n:
            raise DatasetError(f"split {split!r}: row indices must lie in [0, {n - 1}]")
        return torch.from_numpy(rows.astype(np.int64))

    def describe(self, modality: str) -> str:
        return f"{modality}.npy"


def write_array_folder(
    root: str | os.PathLike,
    chunks: Iterable[MultimodalDataset],
    n: int,
    config: dict[str, Any] | None = None,
    dtypes: dict[str, np.dtype | str] | None = None,
) -> Path:
    """Write `n` samples arriving as `chunks` into an ArrayFolder, streaming (memory bounded by a
    chunk): each modality as `dtypes[m]` (default float32), masks and labels, and `config` as
    dataset.json. Raises DatasetError when the chunks do not hold exactly `n` samples."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    masks: dict[str, list[np.ndarray]] = {}
    labels: list[np.ndarray] = []
    written = 0
    try:
        for chunk in chunks:
            for m, x in chunk.data.items():
                dtype = np.dtype((dtypes or {}).get(m, np.float32))
                if m not in files:
                    files[m] = open(root / f"{m}.npy", "wb")  # noqa: SIM115 (closed below)
                    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                              "shape": (n, *x.shape[1:])}  # fmt: skip
                    np.lib.format.write_array_header_1_0(files[m], header)
                files[m].write(np.ascontiguousarray(x.numpy().astype(dtype)).tobytes())
                masks.setdefault(m, []).append(chunk.masks[m].numpy())
            if chunk.labels is not None:
                labels.append(chunk.labels.numpy())
            written += len(chunk)
    finally:
        for f in files.values():
            f.close()
    if written != n:
        raise DatasetError(f"chunks: held {written} samples, expected {n}")
    for m, parts in masks.items():
        np.save(root / f"{MASK_PREFIX}{m}.npy", np.concatenate(parts))
    if labels:
        np.save(root / f"{LABELS}.npy", np.concatenate(labels).astype(np.int64))
    if config:
        (root / CONFIG).write_text(json.dumps(config, indent=2))
    return root
