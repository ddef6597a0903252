"""Data-parallel training across processes on PyTorch's distributed engine (`torchrun`).

Each process (rank) holds the whole model and takes a contiguous shard of every global batch,
so a run of W processes with global batch B walks the data in exactly the order one process
with batch B does. After each backward pass the gradients of the optimizer being stepped are
summed across ranks, each weighted by its shard's share of the global batch (the gradient of
the global batch's mean loss, also for uneven last batches), in flat buckets with one
all-reduce per bucket — DistributedDataParallel's arithmetic, done at the optimizer rather than
in forward hooks because a model here owns its step (several optimizers, several backward
passes per step: the adversarial models, LBFGS). Buffers (batch-norm statistics) are
broadcast from rank 0 before each step, as DDP's `broadcast_buffers` does. Only rank 0 writes
checkpoints, logs and models; epoch metrics are reduced across ranks.

Backends: NCCL when training on CUDA, gloo on CPU. Launch: `mmvae train --nproc N` (one
machine) or `torchrun --nnodes ... -m core.cli.main train ...` (docs/distributed.md).
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn

BUCKET_BYTES = 25 * 1024 * 1024  # DDP's default bucket size


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def writes(self) -> bool:
        """Whether this process writes files and shows progress (rank 0 only)."""
        return self.rank == 0

    def shard(self, indices: list[int]) -> list[int]:
        """This rank's contiguous part of a global batch (sizes differ by at most one)."""
        n = len(indices)
        start = self.rank * n // self.size
        return indices[start : (self.rank + 1) * n // self.size]


def from_environment() -> World:
    """The world torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK), joined on first use; a
    single process when those are unset."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def join(world: World, device: torch.device) -> None:
    """Join the process group (NCCL on CUDA, gloo on CPU) unless already joined."""
    if not world.distributed or dist.is_initialized():
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")


def _buckets(tensors: list[Tensor]) -> list[list[Tensor]]:
    buckets: list[list[Tensor]] = [[]]
    size = 0
    for t in tensors:
        if buckets[-1] and (
            size + t.numel() * t.element_size() > BUCKET_BYTES
            or t.dtype != buckets[-1][0].dtype
            or t.device != buckets[-1][0].device
        ):
            buckets.append([])
            size = 0
        buckets[-1].append(t)
        size += t.numel() * t.element_size()
    return [b for b in buckets if b]


def all_reduce_sum(tensors: list[Tensor]) -> None:
    """Sum each tensor across ranks in place, in flat buckets (one all-reduce each)."""
    for bucket in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        dist.all_reduce(flat)
        offset = 0
        for t in bucket:
            t.copy_(flat[offset : offset + t.numel()].view_as(t))
            offset += t.numel()


class GradientSync:
    """Makes each rank's gradients the global batch's: Σ_r (n_r / n) g_r."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.weight = 1.0 / world.size

    def set_shares(self, local: int, total: int) -> None:
        """This step's shard size and global batch size."""
        self.weight = local / total

    def __call__(self, parameters: list[nn.Parameter]) -> None:
        """Reduce the gradients of `parameters` (those of the optimizer being stepped). A
        parameter no rank gave a gradient keeps none (the optimizer skips it, as it would in
        one process); one that only some ranks used gets zeros on the others."""
        if not self.world.distributed or not parameters:
            return
        used = torch.tensor(
            [p.grad is not None for p in parameters], device=parameters[0].device
        ).float()
        dist.all_reduce(used, op=dist.ReduceOp.MAX)
        grads = []
        for p, anywhere in zip(parameters, used.tolist(), strict=True):
            if not anywhere:
                continue
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad.mul_(self.weight))
        all_reduce_sum(grads)

    def loss(self, value: Tensor) -> Tensor:
        """The global batch's loss from each rank's (what LBFGS's line search compares)."""
        if not self.world.distributed:
            return value
        out = value.detach() * self.weight
        dist.all_reduce(out)
        return out


def broadcast_state(module: nn.Module, parameters: bool = True) -> None:
    """Rank 0's buffers (and parameters) on every rank."""
    tensors = [b for b in module.buffers() if b.numel()]
    if parameters:
        tensors = [p.data for p in module.parameters()] + tensors
    for t in tensors:
        dist.broadcast(t, 0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on one (e.g. a stop request only rank 0 saw)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def agreed_stop_reason(reason: str | None, device: torch.device, world: World) -> str | None:
    """On every rank, the stop reason of the lowest rank that has one (None when none has), so
    a stop one rank saw first (a cancel, a time limit) ends every rank with its own reason."""
    if not any_rank(reason is not None, device):
        return None
    return next(r for r in gather(reason, world) if r is not None)


def reduce_sums(
    sums: dict[str, Tensor], count: int, device: torch.device, world: World
) -> tuple[dict[str, Tensor], int]:
    """Per-metric sums and the sample count summed across ranks (a metric a rank lacks, e.g.
    one with no samples in its shard, counts as zero there)."""
    names = sorted(set().union(*gather(sorted(sums), world)))
    zero = torch.zeros((), dtype=torch.float64, device=device)
    values = [sums.get(k, zero).to(device, torch.float64).reshape(()) for k in names]
    packed = torch.stack([*values, torch.tensor(float(count), device=device, dtype=torch.float64)])
    dist.all_reduce(packed)
    return {k: packed[i] for i, k in enumerate(names)}, int(packed[-1].item())


def gather(value: Any, world: World) -> list[Any]:
    """`value` of every rank, in rank order (every rank calls it)."""
    if not world.distributed:
        return [value]
    out: list[Any] = [None] * world.size
    dist.all_gather_object(out, value)
    return out


def leave() -> None:
    """Wait for every rank, then leave the process group (a rank that exits while a peer is
    still connected can make gloo abort the peer)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_process(code: int) -> NoReturn:
    """End a rank's process with `code` once it has left the group, without the interpreter's
    teardown: there gloo's threads can abort a process whose run finished (SIGABRT, "terminate
    called without an active exception", about one two-rank CPU run in twenty), which torchrun
    would report as a failed run."""
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
