"""The .npz dataset format: one float array per modality, `mask__<name>` bool arrays, optional
int `labels`, and `__metadata__` (a JSON string). Loading never unpickles and validates every
array, raising `DatasetError` with a message that names the offending array.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from core.data.dataset import DatasetError, MultimodalDataset

NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
MASK_PREFIX = "mask__"
LABELS = "labels"
METADATA = "__metadata__"


def save_npz(
    dataset: MultimodalDataset,
    path: str | os.PathLike,
    metadata: dict | None = None,
    compress: bool = False,
) -> Path:
    """Write `dataset` to `path` atomically; `metadata` is merged over `dataset.metadata`."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    for name, x in dataset.data.items():
        if not NAME_RE.match(name) or name == LABELS or name.startswith(MASK_PREFIX):
            raise DatasetError(f"{name}: not a valid modality name for .npz ({NAME_RE.pattern})")
        arrays[name] = x.detach().cpu().numpy().astype(np.float32, copy=False)
        arrays[MASK_PREFIX + name] = dataset.masks[name].cpu().numpy().astype(bool, copy=False)
    if dataset.labels is not None:
        arrays[LABELS] = dataset.labels.cpu().numpy().astype(np.int64, copy=False)
    meta = {**dataset.metadata, **(metadata or {})}
    try:
        arrays[METADATA] = np.array(json.dumps(meta))
    except TypeError as e:
        raise DatasetError(f"{METADATA}: metadata is not JSON-serialisable ({e})") from e
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def _readable_archive() -> Iterator[None]:
    """A damaged zip archive (its directory, its compression) is a DatasetError on `file`."""
    try:
        yield
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
        raise DatasetError(f"file: not a readable .npz archive ({e})") from e


def _check_size(source: str | os.PathLike | BinaryIO, max_bytes: int | None) -> None:
    """Refuse a file, or archive contents once uncompressed, larger than `max_bytes`."""
    if max_bytes is None:
        return
    if isinstance(source, (str, os.PathLike)):
        size = os.path.getsize(source)
    else:
        size = source.seek(0, os.SEEK_END)
        source.seek(0)
    if size > max_bytes:
        raise DatasetError(f"file: {size} bytes exceeds the limit of {max_bytes} bytes")
    with _readable_archive(), zipfile.ZipFile(source) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0)
    if unpacked > max_bytes:
        raise DatasetError(
            f"file: {unpacked} bytes once uncompressed exceeds the limit of {max_bytes} bytes"
        )


def _read_arrays(source: str | os.PathLike | BinaryIO) -> dict[str, np.ndarray]:
    """Every member of the archive as an array; object arrays and non-arrays are refused."""
    arrays: dict[str, np.ndarray] = {}
    with _readable_archive():
        archive = np.load(source, allow_pickle=False)
    with archive as npz:
        for key in npz.files:
            try:
                value = npz[key]
            except ValueError as e:
                if "allow_pickle" in str(e):
                    raise DatasetError(f"{key}: object arrays are refused (no pickle)") from e
                raise DatasetError(f"{key}: unreadable array ({e})") from e
            except Exception as e:
                raise DatasetError(f"{key}: unreadable array ({e})") from e
            if not isinstance(value, np.ndarray):
                raise DatasetError(f"{key}: not a .npy array")
            if value.dtype.hasobject:
                raise DatasetError(f"{key}: object arrays are refused (no pickle)")
            arrays[key] = value
    return arrays


def _metadata(value: np.ndarray) -> dict:
    if value.ndim != 0 or value.dtype.kind != "U":
        raise DatasetError(f"{METADATA}: expected a JSON string, got {value.dtype} {value.shape}")
    try:
        meta = json.loads(str(value))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{METADATA}: invalid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise DatasetError(f"{METADATA}: expected a JSON object, got {type(meta).__name__}")
    return meta


def _modality(name: str, x: np.ndarray) -> torch.Tensor:
    if x.dtype.kind in "iub":
        raise DatasetError(
            f"{name}: integer or boolean dtype {x.dtype} is refused; convert it to float "
            f"(e.g. x.astype('float32'), scaled as the model expects)"
        )
    if x.dtype.kind != "f":
        raise DatasetError(f"{name}: expected a floating-point array, got {x.dtype}")
    if x.ndim < 2 or x.shape[0] == 0:
        raise DatasetError(f"{name}: expected shape [N, ...] with N > 0, got {list(x.shape)}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _mask(key: str, k: np.ndarray) -> torch.Tensor:
    if k.dtype != np.bool_:
        raise DatasetError(f"{key}: expected a boolean array, got {k.dtype}")
    return torch.from_numpy(np.ascontiguousarray(k))


def _labels(y: np.ndarray) -> torch.Tensor:
    if y.dtype.kind not in "iu":
        raise DatasetError(f"{LABELS}: expected integer class labels, got {y.dtype}")
    if y.size and y.min() < 0:
        raise DatasetError(f"{LABELS}: class labels must be non-negative, got {y.min()}")
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))


def load_npz(
    source: str | os.PathLike | BinaryIO, max_bytes: int | None = None
) -> MultimodalDataset:
    """Read and validate a dataset written by `save_npz` (or by hand with the same layout)."""
    if not zipfile.is_zipfile(source):
        raise DatasetError("file: not an .npz (zip) archive")
    if not isinstance(source, (str, os.PathLike)):
        source.seek(0)
    _check_size(source, max_bytes)
    arrays = _read_arrays(source)
    data, masks, labels, meta = {}, {}, None, {}
    for key, value in arrays.items():
        if key == METADATA:
            meta = _metadata(value)
        elif key == LABELS:
            labels = _labels(value)
        elif key.startswith(MASK_PREFIX):
            masks[key[len(MASK_PREFIX) :]] = _mask(key, value)
        elif NAME_RE.match(key):
            data[key] = _modality(key, value)
        else:
            raise DatasetError(f"{key}: not a valid array name (modalities: {NAME_RE.pattern})")
    if not data:
        raise DatasetError("file: contains no modality array")
    for name in masks:
        if name not in data:
            raise DatasetError(f"{MASK_PREFIX}{name}: no modality named {name!r}")
    return MultimodalDataset(data, masks, labels, meta)
