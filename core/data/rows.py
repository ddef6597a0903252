"""Datasets whose samples are rows of per-modality arrays, read (and transformed) only when a
batch asks for them: compact storage (bytes, pairings by index) with `MultimodalDataset`'s
interface for the Trainer, missingness generators and subsets.

A subclass supplies `arrays`: for each modality an object with `shape`, `dtype` and
`read(sorted_rows) -> np.ndarray`, the rows of the modality's source array. A sample's row in a
modality's array is `index[m][sample]` (pairings reuse a source row; default: the sample row).
Masks and labels (bytes per sample) live in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from core.data import transforms as tf
from core.data.batch import Batch
from core.data.dataset import DatasetError, MultimodalDataset


class RowSource(Protocol):
    """One modality's storage: `shape` [N, *sample shape]; `read(rows)` the rows at sorted
    indices (a .npy file, image files, an array in memory)."""

    shape: tuple[int, ...]

    def read(self, rows: np.ndarray) -> np.ndarray: ...


class InMemory:
    """A source array held in memory (e.g. uint8 images), read by fancy indexing."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.ascontiguousarray(array)
        self.shape, self.dtype = self.array.shape, self.array.dtype

    def read(self, rows: np.ndarray) -> np.ndarray:
        return self.array[rows]


class RowDataset(Dataset):
    """Samples `rows` (positions into the full sample range) of per-modality row sources."""

    arrays: dict[str, RowSource]
    index: dict[str, np.ndarray | None]
    transforms: dict[str, list[tf.Transform]]
    rows: Tensor
    masks: dict[str, Tensor]
    labels: Tensor | None
    metadata: dict[str, Any]
    specs: list[dict] | None = None
    augment: bool = False  # apply augmenting transforms (random flips, crops): training data

    def _check_observed(self) -> None:
        observed = torch.stack(list(self.masks.values())).any(0)
        if not observed.all():
            row = int((~observed).nonzero()[0])
            raise DatasetError(f"masks: sample {row} has no observed modality")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def modalities(self) -> list[str]:
        return list(self.arrays)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each modality after its transforms."""
        return {m: tf.output_shape(self.transforms[m], a.shape[1:]) for m, a in self.arrays.items()}

    def modality_specs(self) -> list[dict] | None:
        """The modality specs the dataset declares (None: infer them from the data)."""
        return self.specs or None

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        return self.batch(torch.as_tensor(indices, dtype=torch.long))

    def read(self, modality: str, samples: np.ndarray) -> np.ndarray:
        """Raw values of `modality` for sample rows `samples`, reading sorted source rows."""
        index = self.index.get(modality)
        rows = samples if index is None else index[samples]
        order = np.argsort(rows, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        return self.arrays[modality].read(rows[order])[back]

    def batch(self, idx: Tensor | slice | None = None) -> Batch:
        """The samples at `idx` (all when None), read and transformed."""
        positions = torch.arange(len(self))[idx] if idx is not None else torch.arange(len(self))
        samples = self.rows[positions].numpy()
        masks = {m: k[positions] for m, k in self.masks.items()}
        data = {}
        for m in self.arrays:
            raw = torch.from_numpy(np.ascontiguousarray(self.read(m, samples)))
            x = tf.apply(self.transforms[m], raw.float(), self.augment)
            seen = masks[m]
            bad = ~torch.isfinite(x[seen]).flatten(1).all(1)
            if bad.any():
                row = int(samples[seen.numpy()][bad.numpy()][0])
                raise DatasetError(f"{self.describe(m)}: row {row} contains NaN or infinite values")
            data[m] = torch.where(seen.view(-1, *([1] * (x.ndim - 1))), x, 0.0)
        labels = None if self.labels is None else self.labels[positions]
        return Batch(data, masks, labels)

    def describe(self, modality: str) -> str:
        """How errors name a modality's source (ArrayFolder: its file)."""
        return modality

    def _view(self, rows: Tensor, masks: dict[str, Tensor], labels: Tensor | None) -> RowDataset:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view.rows, view.masks, view.labels = rows, masks, labels
        view.metadata = dict(self.metadata)
        view._check_observed()
        return view

    def subset(self, idx: Tensor | slice) -> RowDataset:
        positions = torch.arange(len(self))[idx]
        labels = None if self.labels is None else self.labels[positions]
        masks = {m: k[positions] for m, k in self.masks.items()}
        return self._view(self.rows[positions], masks, labels)

    def with_masks(self, masks: dict[str, Tensor]) -> RowDataset:
        """The same samples with new observation masks (values under False read as zeros)."""
        unknown = set(masks) - set(self.masks)
        if unknown:
            raise DatasetError(f"masks: no modality named {sorted(unknown)}")
        new = {m: torch.as_tensor(masks.get(m, k)).bool().clone() for m, k in self.masks.items()}
        return self._view(self.rows, new, self.labels)

    def head(self, n: int = 1024) -> MultimodalDataset:
        """The first `n` samples in memory (e.g. to infer modality specs from)."""
        b = self.batch(slice(0, n))
        return MultimodalDataset(b.data, b.masks, b.labels, self.metadata)

    def missing_rate(self) -> dict[str, float]:
        return {m: float((~k).float().mean()) for m, k in self.masks.items()}


class ArrayRows(RowDataset):
    """Samples of in-memory arrays (any dtype, e.g. bytes) or other row sources (image files),
    each modality read through an optional index (`index[m][i]`: the row of sample i, so
    pairings share source rows)."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray | RowSource],
        index: dict[str, np.ndarray] | None = None,
        masks: dict[str, Tensor] | None = None,
        labels: Tensor | np.ndarray | None = None,
        transforms: dict[str, list[dict]] | None = None,
        specs: list[dict] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not arrays:
            raise DatasetError("arrays: at least one modality is required")
        self.arrays = {m: a if hasattr(a, "read") else InMemory(a) for m, a in arrays.items()}
        self.index = {m: None if index is None else index.get(m) for m in arrays}
        sizes = {m: len(self.index[m]) if self.index[m] is not None else a.shape[0]
                 for m, a in self.arrays.items()}  # fmt: skip
        n = next(iter(sizes.values()))
        for m, size in sizes.items():
            if size != n:
                raise DatasetError(f"{m}: has {size} samples, expected {n}")
            rows = self.index[m]
            if (
                rows is not None
                and len(rows)
                and (rows.min() < 0 or rows.max() >= self.arrays[m].shape[0])
            ):
                raise DatasetError(
                    f"{m}: index rows must lie in [0, {self.arrays[m].shape[0] - 1}]"
                )
        self.transforms = {m: tf.parse_transforms((transforms or {}).get(m)) for m in arrays}
        self.rows = torch.arange(n)
        self.masks = {m: torch.ones(n, dtype=torch.bool) for m in arrays}
        self.masks.update({m: torch.as_tensor(k).bool().clone() for m, k in (masks or {}).items()})
        self.labels = None if labels is None else torch.as_tensor(labels).long()
        self.specs = specs
        self.metadata = dict(metadata or {})
        self._check_observed()
