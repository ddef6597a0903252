"""Batches for the Trainer: a (seed, epoch)-determined shuffle that can skip what is done."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.data.batch import Batch, collate
from core.data.dataset import MultimodalDataset


def as_batch(items: Any) -> Batch:
    """DataLoader collate_fn: datasets with `__getitems__` already return a `Batch`."""
    return items if isinstance(items, Batch) else collate(items)


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for epoch `epoch`'s shuffle that depends only on (seed, epoch), so resumes agree."""
    return (seed * 1_000_003 + epoch * 7_919 + 1) % (2**63 - 1)


def shuffled_batches(
    n: int, batch_size: int, seed: int, epoch: int, skip: int = 0, drop_last: bool = False
) -> list[list[int]]:
    """Index batches of one epoch, without the first `skip` samples of its order (resume)."""
    gen = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    chunks = list(torch.randperm(n, generator=gen)[skip:].split(batch_size))
    if drop_last and chunks and len(chunks[-1]) < batch_size and n >= batch_size:
        chunks.pop()
    return [c.tolist() for c in chunks]


def sequential_batches(n: int, batch_size: int) -> list[list[int]]:
    """Evaluation batches: in order, never shuffled."""
    return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]


def iterate(
    dataset: Dataset,
    batches: list[list[int]],
    device: torch.device,
    num_workers: int = 0,
    seed: int = 0,
    indexed: bool = True,
) -> Iterator[Batch]:
    """`Batch`es on `device`: indexed straight from an in-memory dataset that is on `device`
    already (without workers, unless `indexed` is False), else through a DataLoader, whose own
    generator keeps it off the global RNG."""
    direct = indexed and num_workers == 0 and isinstance(dataset, MultimodalDataset)
    if direct and on(dataset, device):
        return indexed_batches(dataset, batches)
    return loaded_batches(dataset, batches, device, num_workers, seed)


def on(dataset: MultimodalDataset, device: torch.device) -> bool:
    """Whether every tensor of `dataset` is on `device` (`cuda` without an index: any GPU)."""
    return all(
        t.device.type == device.type and device.index in (None, t.device.index)
        for t in dataset.data.values()
    )


def indexed_batches(dataset: MultimodalDataset, batches: list[list[int]]) -> Iterator[Batch]:
    """`batches` of `dataset`, indexed on its device: the epoch's order goes there in one
    transfer, and no batch passes through host memory."""
    if not batches:
        return
    order = torch.tensor([i for b in batches for i in b], dtype=torch.long)
    device = next(iter(dataset.data.values())).device
    for idx in order.to(device).split([len(b) for b in batches]):
        yield dataset.batch(idx)


def loaded_batches(
    dataset: Dataset, batches: list[list[int]], device: torch.device, num_workers: int, seed: int
) -> Iterator[Batch]:
    """`batches` of `dataset` through a DataLoader, each moved to `device`."""
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=as_batch,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    for batch in loader:
        yield batch.to(device, non_blocking=True)
