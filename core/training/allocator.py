"""glibc's allocator set up for training steps on the CPU: memory a step frees is kept for the next.

A training step allocates and frees the same large activations every step. By default glibc
hands blocks above a dynamic threshold back to the OS (mmap) and trims the heap's free top above
another, so the next step faults every page of them in again, zero-filled by the kernel: on
2 cores that was up to a third of an MMVAE+ step at batch 256 (bench/RESULTS.md). With blocks up
to 32 MiB (glibc's ceiling for a fixed threshold on 64-bit) served from the heap and up to 1 GiB
of its free top kept, the pages stay mapped. Nothing computed changes; the process's resident
memory stays at its steps' peak. Process-wide and permanent, so it is the Trainer's option.
"""

from __future__ import annotations

import ctypes
import platform

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # blocks below this come from the heap
TRIM_THRESHOLD = 2**30  # free heap top kept up to this


def keep_freed_memory() -> bool:
    """Set glibc's thresholds (above); False where the C library is not glibc (nothing done)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process already runs on
    mmap = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    trim = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    return mmap == 1 and trim == 1
