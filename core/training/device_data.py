"""In-memory training data kept on the training device.

A step then indexes device tensors instead of copying its batch from host memory: on a GPU that
copy (from pageable memory) blocks the host until it is done, so the host cannot queue the next
step's kernels while the GPU runs this one. On the CPU the data is already there; there, too,
batches are indexed straight from the dataset without a DataLoader (`never`: through one).
"""

from __future__ import annotations

import weakref
from typing import Literal

import torch
from torch.utils.data import Dataset

from core.data.dataset import MultimodalDataset

DataOnDevice = Literal["auto", "always", "never"]
AUTO_SHARE = 0.25  # `auto` keeps a dataset that takes at most this share of free device memory


def keeps_on_device(
    policy: DataOnDevice, device: torch.device, nbytes: int, free_bytes: int | None
) -> bool:
    """Whether a dataset of `nbytes` is kept on `device`; `free_bytes` is the device's free
    memory (None where torch cannot tell, so `auto` leaves the data in host memory)."""
    if policy == "never":
        return False
    if device.type == "cpu" or policy == "always":
        return True
    if free_bytes is None:
        return False
    return nbytes <= free_bytes * AUTO_SHARE


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device; None for other devices."""
    return torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None


class DeviceDatasets:
    """The datasets a Trainer reads, on its device where `policy` keeps them: one copy per
    in-memory dataset for as long as the dataset lives. With DataLoader workers, or for
    datasets read from disk, the data stays where it is and a DataLoader moves each batch."""

    def __init__(self, device: torch.device, policy: DataOnDevice, num_workers: int) -> None:
        self.device = device
        self.policy = policy
        self.num_workers = num_workers
        self.indexes = policy != "never"  # batches indexed without a DataLoader where they can be
        self._copies: weakref.WeakKeyDictionary[Dataset, MultimodalDataset] = (
            weakref.WeakKeyDictionary()
        )

    def __call__(self, dataset: Dataset) -> Dataset:
        if self.num_workers or not isinstance(dataset, MultimodalDataset):
            return dataset
        if dataset in self._copies:
            return self._copies[dataset]
        free = free_memory(self.device)
        if not keeps_on_device(self.policy, self.device, dataset.nbytes, free):
            return dataset
        moved = dataset.to(self.device)
        if moved is not dataset:  # a copy on the device, kept while the dataset lives
            self._copies[dataset] = moved
        return moved
