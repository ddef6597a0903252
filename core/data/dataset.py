"""In-memory multimodal dataset where any modality may be missing in any sample."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from core.data.batch import Batch


class DatasetError(ValueError):
    """A dataset is malformed; the message names the offending array and the problem."""


class MultimodalDataset(Dataset):
    """`data[m]`: [N, *shape_m] float tensors; `masks[m]`: bool [N] (None = all observed);
    `labels`: [N] integer class labels or None; `metadata`: JSON-able provenance (kept in .npz).

    Values under a False mask are replaced by zeros, so a missing modality is zeros + mask False.
    Every sample must have at least one observed modality.
    """

    def __init__(
        self,
        data: dict[str, Tensor],
        masks: dict[str, Tensor] | None = None,
        labels: Tensor | None = None,
        metadata: dict | None = None,
    ) -> None:
        if not data:
            raise DatasetError("data: at least one modality is required")
        n = None
        clean: dict[str, Tensor] = {}
        for name, x in data.items():
            x = torch.as_tensor(x)
            if not torch.is_floating_point(x):
                raise DatasetError(f"{name}: expected a floating-point array, got {x.dtype}")
            if x.ndim < 2:
                raise DatasetError(f"{name}: expected shape [N, ...], got {list(x.shape)}")
            if n is None:
                n = x.shape[0]
            elif x.shape[0] != n:
                raise DatasetError(f"{name}: has {x.shape[0]} samples, expected {n}")
            clean[name] = x.float().contiguous()
        assert n is not None
        full_masks: dict[str, Tensor] = {}
        for name in clean:
            mask = None if masks is None else masks.get(name)
            if mask is None:
                mask = torch.ones(n, dtype=torch.bool)
            mask = torch.as_tensor(mask)
            if mask.dtype != torch.bool:
                raise DatasetError(f"mask__{name}: expected a boolean array, got {mask.dtype}")
            if mask.shape != (n,):
                raise DatasetError(f"mask__{name}: expected shape [{n}], got {list(mask.shape)}")
            full_masks[name] = mask.clone()
        if masks is not None:
            unknown = set(masks) - set(clean)
            if unknown:
                raise DatasetError(f"masks: no modality named {sorted(unknown)}")
        observed = torch.stack(list(full_masks.values()))
        empty = (~observed.any(0)).nonzero().flatten()
        if len(empty):
            raise DatasetError(
                f"masks: sample {int(empty[0])} has no observed modality "
                f"({len(empty)} such samples); each sample needs at least one"
            )
        for name, x in clean.items():
            bad = ~torch.isfinite(x[full_masks[name]])
            if bad.any():
                raise DatasetError(f"{name}: contains NaN or infinite values")
            view = full_masks[name].view(-1, *([1] * (x.ndim - 1)))
            clean[name] = torch.where(view, x, torch.zeros((), dtype=x.dtype))
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.shape != (n,):
                raise DatasetError(f"labels: expected shape [{n}], got {list(labels.shape)}")
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise DatasetError(f"labels: expected integer class labels, got {labels.dtype}")
            labels = labels.long()
        self.data = clean
        self.masks = full_masks
        self.labels = labels
        self.metadata: dict = dict(metadata or {})

    def __len__(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        return list(self.data)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per-sample shape of each modality."""
        return {m: tuple(x.shape[1:]) for m, x in self.data.items()}

    def __getitem__(self, i: int) -> dict:
        return {
            "data": {m: x[i] for m, x in self.data.items()},
            "masks": {m: k[i] for m, k in self.masks.items()},
            "label": None if self.labels is None else self.labels[i],
        }

    def __getitems__(self, indices: Sequence[int]) -> Batch:
        """Batched indexing used by `torch.utils.data.DataLoader` (no per-sample collation)."""
        return self.batch(torch.as_tensor(indices, dtype=torch.long))

    def batch(self, idx: Tensor | slice | None = None) -> Batch:
        """The samples at `idx` (all samples when None) as one `Batch`."""
        full = Batch(self.data, self.masks, self.labels)
        return full if idx is None else full.index(idx)

    @property
    def nbytes(self) -> int:
        """Bytes of its arrays, masks and labels."""
        labels = 0 if self.labels is None else self.labels.nbytes
        return sum(t.nbytes for t in [*self.data.values(), *self.masks.values()]) + labels

    def to(self, device: torch.device | str) -> MultimodalDataset:
        """This dataset with every tensor on `device` (itself when they are there already);
        the copy is not validated again: its values are this dataset's."""
        device = torch.device(device)
        if all(t.device == device for t in self.data.values()):
            return self
        moved = copy.copy(self)
        moved.data = {m: x.to(device) for m, x in self.data.items()}
        moved.masks = {m: k.to(device) for m, k in self.masks.items()}
        moved.labels = None if self.labels is None else self.labels.to(device)
        return moved

    def subset(self, idx: Tensor | slice) -> MultimodalDataset:
        b = self.batch(idx)
        return MultimodalDataset(b.data, b.masks, b.labels, self.metadata)

    def with_masks(self, masks: dict[str, Tensor]) -> MultimodalDataset:
        """The same data with new observation masks (values under False become zeros)."""
        return MultimodalDataset(self.data, masks, self.labels, self.metadata)

    def missing_rate(self) -> dict[str, float]:
        return {m: float((~k).float().mean()) for m, k in self.masks.items()}
