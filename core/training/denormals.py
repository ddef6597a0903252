"""Denormal floats flushed to zero on the CPU while training: they cost up to 40 % of a step.

Adam's first moment of a parameter whose gradient has become exactly zero (a dead ReLU unit's
weights, an input that is always zero such as a digit's corner pixel) shrinks by β1 every step
and falls below float32's smallest normal number (1.2e-38) after some 700-900 steps. CPUs compute
on such denormal numbers many times slower than on normal ones, so from then on every optimizer
step pays for them: up to 1.6x slower steps on the models of bench/compare (bench/RESULTS.md).
With flush-to-zero and denormals-are-zero set they are zeros instead: only values of magnitude
below 1.2e-38 change.

The mode is a per-thread CPU register. `torch.set_flush_denormal` sets it on the calling thread
only, and the worker threads of torch's OpenMP runtime keep their own, so it is also set on
each of them from inside a parallel region of that runtime (`GOMP_parallel`, which libgomp,
LLVM's libomp and Intel's libiomp5 all export). Where no such runtime is loaded only the calling
thread is set.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path

import torch

OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp5")  # file name prefixes
_ParallelBody = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def denormal(t: torch.Tensor) -> torch.Tensor:
    """Which elements of the float tensor `t` are denormal (non-zero, below the smallest normal)."""
    return (t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)


def denormals_flushed() -> bool:
    """Whether the calling thread computes denormal floats as zeros now."""
    smallest = torch.ones(1, dtype=torch.int32).view(torch.float32)  # 1.4e-45, a denormal
    return bool((smallest * 1.0).item() == 0.0)


def _openmp_runtimes() -> list[str]:
    """Paths of the OpenMP runtimes this process has loaded (from /proc/self/maps)."""
    try:
        lines = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return []
    paths = {line.split()[-1] for line in lines if "/" in line}
    return sorted(p for p in paths if Path(p).name.startswith(OPENMP_RUNTIMES))


def set_flush_denormals(enabled: bool) -> bool:
    """Flush denormals (or stop) on the calling thread and on torch's OpenMP worker threads;
    False where the CPU has no such mode (nothing changed)."""
    if not torch.set_flush_denormal(enabled):
        return False
    body = _ParallelBody(lambda _: torch.set_flush_denormal(enabled))
    threads = ctypes.c_uint(torch.get_num_threads())
    for path in _openmp_runtimes():
        parallel = getattr(ctypes.CDLL(path), "GOMP_parallel", None)
        if parallel is not None:  # each thread of a team of torch's size runs `body`
            parallel(body, None, threads, ctypes.c_uint(0))
    return True


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True) -> Iterator[None]:
    """Denormals flushed inside the block (when `enabled`), the previous mode restored after."""
    if not enabled:
        yield
        return
    before = denormals_flushed()
    set_flush_denormals(True)
    try:
        yield
    finally:
        set_flush_denormals(before)
