"""`torch.compile` for training steps: the model's forward, compiled once for the full batch size.

Only full training batches run the compiled forward; the epoch's last, smaller batch and every
evaluation run eagerly, so one graph is compiled (no recompilation for a new batch size or for
eval mode). The compiled graph uses torch's eager random number generator
(`fallback_random`), so a compiled run draws the same noise as an eager one and their losses
agree to float rounding on a fixed seed.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import torch
from torch import nn


class CompiledForward:
    """The compiled forward of `model`, switched on around the steps that use it."""

    def __init__(self, model: nn.Module) -> None:
        import torch._inductor.config as inductor

        if not any(shutil.which(cc) for cc in ("c++", "g++", "clang++", "cc", "gcc")):
            raise ValueError(
                "compile: torch.compile builds C++ (or Triton) kernels and needs a C/C++ "
                "compiler on the PATH, and none was found; install one (e.g. g++) or set "
                "compile=False"
            )
        inductor.fallback_random = True  # the eager RNG stream: compiled == eager draws
        self.model = model
        self.forward = torch.compile(model.forward, dynamic=False)

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """`model(batch)` runs the compiled forward inside this block (an instance attribute
        shadows the class's `forward`; removing it restores the eager one)."""
        self.model.forward = self.forward
        try:
            yield
        finally:
            del self.model.forward
