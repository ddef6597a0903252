"""The IDX format of MNIST's files (LeCun et al.): a big-endian header — two zero bytes, a type
code (0x08 = unsigned byte), the number of dimensions — then one uint32 size per dimension and the
values in row-major order; distributed gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from core.data.dataset import DatasetError

_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """The array in an IDX file (`.gz` or plain), validated against its declared sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _TYPES:
        raise DatasetError(f"{path.name}: not an IDX file (bad magic number)")
    dims = raw[3]
    header = 4 + 4 * dims
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], ">u4"))
    dtype = np.dtype(_TYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path.name}: {len(raw)} bytes where its header declares {expected}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))
