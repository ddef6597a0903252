"""keep_freed_memory: a CPU step's freed activations stay mapped for the next step."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from core.training import Trainer, TrainerConfig
from tests.core.training.conftest import tiny_mvae

ROOT = Path(__file__).resolve().parents[3]
STEPS = 10
BLOCKS = 8  # live at once in a "step", 8 MiB each: a step's activations
BLOCK = 2**23
# a process that runs STEPS such steps through the C allocator torch's CPU tensors use, with or
# without keep_freed_memory, and prints the minor page faults the steps cost
PROGRAM = f"""
import ctypes, resource, sys
from core.training.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
def step():
    live = [libc.malloc({BLOCK}) for _ in range({BLOCKS})]
    for block in live:
        libc.memset(block, 1, {BLOCK})
    for block in live:
        libc.free(block)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range({STEPS}):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    return int(out.stdout.strip())


def test_freed_blocks_are_reused_instead_of_faulted_back_in():
    """By default glibc gives a step's 64 MiB back to the OS when they are freed and the next
    step faults their pages in again; kept, fewer pages fault in all STEPS steps than in one."""
    pages_per_step = BLOCKS * BLOCK // 4096
    default, kept = _faults("default"), _faults("keep")
    assert default > STEPS * pages_per_step * 0.9
    assert kept < pages_per_step


@pytest.mark.parametrize("keep", [True, False])
def test_the_trainer_keeps_freed_memory_on_the_cpu_unless_told_not_to(monkeypatch, data, keep):
    calls = []
    monkeypatch.setattr("core.training.trainer.keep_freed_memory", lambda: calls.append(1))
    config = TrainerConfig(epochs=1, batch_size=32, device="cpu", keep_freed_cpu_memory=keep)
    Trainer(tiny_mvae(), data, None, config)
    assert calls == ([1] if keep else [])
