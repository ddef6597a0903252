"""Batches for the Trainer: a (seed, epoch)-determined shuffle that can skip what is done."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from core.data.batch import Batch, collate


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
) -> Iterator[Batch]:
    """`Batch`es on `device`. The loader's own generator keeps it off the global RNG."""
    loader = DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=as_batch,
        num_workers=num_workers,
        generator=torch.Generator().manual_seed(seed),
    )
    for batch in loader:
        yield batch.to(device, non_blocking=True)
