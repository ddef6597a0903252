"""A batch of multimodal samples: modality tensors, observation masks and optional labels."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Batch:
    """`data[m]`: [B, *shape_m]; `masks[m]`: bool [B] (True = observed); `labels`: [B] or None.

    A missing modality holds zeros under a False mask. Models must not depend on those values.
    """

    data: dict[str, Tensor]
    masks: dict[str, Tensor]
    labels: Tensor | None = None

    @property
    def size(self) -> int:
        return next(iter(self.data.values())).shape[0]

    @property
    def modalities(self) -> list[str]:
        return list(self.data)

    @property
    def device(self) -> torch.device:
        return next(iter(self.data.values())).device

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return Batch(
            {m: x.to(device, non_blocking=non_blocking) for m, x in self.data.items()},
            {m: k.to(device, non_blocking=non_blocking) for m, k in self.masks.items()},
            None if self.labels is None else self.labels.to(device, non_blocking=non_blocking),
        )

    def index(self, idx: Tensor | slice) -> Batch:
        """The samples at `idx` (a slice, an index tensor or a boolean tensor)."""
        return Batch(
            {m: x[idx] for m, x in self.data.items()},
            {m: k[idx] for m, k in self.masks.items()},
            None if self.labels is None else self.labels[idx],
        )

    def mask_matrix(self, modalities: list[str] | None = None) -> Tensor:
        """Observation masks stacked as a bool [M, B] in the order of `modalities`."""
        names = modalities if modalities is not None else self.modalities
        return torch.stack([self.masks[m] for m in names])

    @staticmethod
    def full(data: dict[str, Tensor], labels: Tensor | None = None) -> Batch:
        """A batch where every modality of every sample is observed."""
        n = next(iter(data.values())).shape[0]
        device = next(iter(data.values())).device
        masks = {m: torch.ones(n, dtype=torch.bool, device=device) for m in data}
        return Batch(dict(data), masks, labels)


def collate(samples: list[dict]) -> Batch:
    """Stack per-sample dicts (as returned by `MultimodalDataset[i]`) into a `Batch`."""
    first = samples[0]
    data = {m: torch.stack([s["data"][m] for s in samples]) for m in first["data"]}
    masks = {m: torch.tensor([bool(s["masks"][m]) for s in samples]) for m in first["masks"]}
    labels = None
    if first.get("label") is not None:
        labels = torch.stack([torch.as_tensor(s["label"]) for s in samples])
    return Batch(data, masks, labels)
