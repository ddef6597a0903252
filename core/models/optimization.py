"""What a model tells the Trainer about its optimisation: stages, optimizers and the step.

`Trainable` is the part of the model API the one `Trainer` drives. The defaults give a single
stage, one optimizer ("main") over every parameter and the step loss -> backward -> step; a model
overrides `stages`, `configure_optimizers` or `training_step` (adversarial phases, one optimizer
per network, a frozen second stage). The Trainer keeps every optimizer, scheduler and gradient
scaler by name, checkpoints them all, and tells the model its epoch and stage.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

MAIN = "main"


@dataclass
class LossOutput:
    """`loss`: scalar to minimise (mean over samples); `metrics`: detached scalars to log;
    `outputs`: with `forward(batch, return_outputs=True)`, the batch's embeddings and
    reconstructions for monitoring (`MultimodalVAE.monitor`)."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)
    outputs: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Stage:
    """A training stage: `epochs` (None = until the end) and the parameters it trains (None =
    all). Stage boundaries are exact: a stage of N epochs ends after exactly N epochs."""

    name: str
    epochs: int | None = None
    parameters: Callable[[nn.Module], Iterable[nn.Parameter]] | None = None


@dataclass
class OptimizerSpec:
    """One named optimizer: its parameter group, and options that override `TrainerConfig`
    (`optimizer` kind, `learning_rate`, `options` = keyword arguments; None = the config's)."""

    parameters: Iterable[nn.Parameter]
    optimizer: str | None = None
    learning_rate: float | None = None
    options: dict[str, Any] | None = None


class Optimizers(Protocol):
    """The Trainer's handle on the current stage's optimizers, given to `training_step`."""

    @property
    def names(self) -> list[str]: ...

    def step(
        self, loss: Tensor, name: str = MAIN, reevaluate: Callable[[], Tensor] | None = None
    ) -> None:
        """Zero optimizer `name`'s gradients, backpropagate `loss` (scaled under fp16), clip
        (TrainerConfig.grad_clip_norm, after backward) and step it. `reevaluate` recomputes the
        loss for optimizers that evaluate it several times per step (LBFGS)."""


class Trainable(nn.Module):
    """The training hooks every model has (MultimodalVAE inherits them)."""

    def __init__(self) -> None:
        super().__init__()
        self._stage: str | None = None
        # (epoch, progress), the one record of both, a tensor updated in place that schedules
        # read inside forward: a compiled forward takes it as an input instead of recompiling
        # for every new value.
        self.register_buffer("clock", torch.zeros(2, dtype=torch.float64), persistent=False)

    @property
    def epoch(self) -> int:
        """The 1-based epoch set by the Trainer (0 before training); drives annealing."""
        return int(self.clock[0])

    @property
    def progress(self) -> float:
        """Epochs completed, counting the current one's steps done."""
        return float(self.clock[1])

    @property
    def stage(self) -> str:
        """The current stage's name (the first stage until the Trainer says otherwise)."""
        return self._stage if self._stage is not None else self.stages[0].name

    @property
    def stages(self) -> list[Stage]:
        return [Stage("train")]

    def set_epoch(self, epoch: int) -> None:
        """Called by the Trainer when epoch `epoch` (1-based) starts."""
        self.clock.copy_(torch.tensor([epoch, epoch - 1], dtype=torch.float64))

    def set_progress(self, epochs: float) -> None:
        """Called by the Trainer before each step: epochs completed, fractional (0 at the very
        first step), for schedules that move every step."""
        self.clock[1] = epochs

    def set_stage(self, stage: str) -> None:
        """Called by the Trainer when a stage starts (and again on resume)."""
        known = [s.name for s in self.stages]
        if stage not in known:
            raise ValueError(f"stage: unknown {stage!r}; this model's stages are {known}")
        self._stage = stage

    def configure_optimizers(self, stage: Stage) -> dict[str, OptimizerSpec]:
        """The optimizers of `stage`, by name. Default: one over the stage's parameters."""
        params = self.parameters() if stage.parameters is None else stage.parameters(self)
        return {MAIN: OptimizerSpec(params)}

    def training_step(self, batch: Any, optimizers: Optimizers) -> LossOutput:
        """One optimisation step on `batch`; returns what to log. Default: minimise the loss."""
        out = self(batch)
        optimizers.step(out.loss, reevaluate=lambda: self(batch).loss)
        return out
