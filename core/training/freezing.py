"""Gradients only for what a stage trains: the parameters no optimizer of the current stage
steps stop requiring gradients, so backward does not compute theirs (TELBO's second stage
decodes through frozen decoders: their weight gradients were computed every step and thrown
away). Gradients still flow through them to what is trained."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn


class StageFreezer:
    """Each parameter's own `requires_grad` as it was when training started, and the stage's
    view of it: `freeze_all_but(stepped)` for a stage, `restore()` before the next stage's
    optimizers are built and when training ends."""

    def __init__(self, model: nn.Module) -> None:
        self.flags = {p: p.requires_grad for p in model.parameters()}

    def restore(self) -> None:
        for p, flag in self.flags.items():
            p.requires_grad_(flag)

    def freeze_all_but(self, stepped: Iterable[nn.Parameter]) -> None:
        keep = {id(p) for p in stepped}
        for p, flag in self.flags.items():
            p.requires_grad_(flag and id(p) in keep)
