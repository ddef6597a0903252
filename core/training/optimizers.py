"""`StageOptimizers`: a stage's optimizers, schedulers and gradient scalers, kept by name.

It is the handle a model's `training_step` receives (`core.models.Optimizers`): `step(loss,
name)` zeroes that optimizer's gradients, backpropagates (scaled under fp16, outside autocast),
clips after backward and steps. The Trainer checkpoints and restores all of it by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from core.models.optimization import MAIN, Stage, Trainable
from core.training.config import TrainerConfig
from core.training.optim import Scheduler, build_optimizer, build_scheduler, step_scheduler

NoAutocast = Callable[[], contextlib.AbstractContextManager]


def grad_norm_key(name: str) -> str:
    """The metric a clipped optimizer's gradient norm is logged under."""
    return "grad_norm" if name == MAIN else f"grad_norm/{name}"


class StageOptimizers:
    """The optimizers `model.configure_optimizers(stage)` declares, built from `config`."""

    def __init__(
        self,
        model: Trainable,
        stage: Stage,
        config: TrainerConfig,
        stage_epochs: int,
        no_autocast: NoAutocast = contextlib.nullcontext,
    ) -> None:
        specs = model.configure_optimizers(stage)
        if not specs:
            raise ValueError(f"stage {stage.name!r}: configure_optimizers returned no optimizer")
        self.config = config
        self.no_autocast = no_autocast
        self.optimizers = {
            name: build_optimizer(spec, config, f"stage {stage.name!r}, optimizer {name!r}")
            for name, spec in specs.items()
        }
        self.schedulers: dict[str, Scheduler | None] = {
            name: build_scheduler(opt, config, stage_epochs)
            for name, opt in self.optimizers.items()
        }
        fp16 = config.mixed_precision == "fp16"
        self.scalers = {name: torch.amp.GradScaler("cuda", enabled=fp16) for name in specs}
        self.metrics: dict[str, Tensor] = {}  # gradient norms of the current step
        self.model = model
        # the model's parameters, listed once: nn.Module.zero_grad walks the module tree on
        # every call (50-90 µs a step for the bench models, 2-3 % of a compiled batch-64 step)
        self._model_parameters = tuple(model.parameters())
        self._fresh = False  # no backward since every gradient was cleared
        self.sync: Callable[[list[Any]], None] | None = None  # across ranks (distributed.py)
        self.sync_loss: Callable[[Tensor], Tensor] | None = None

    def _sync(self, opt: torch.optim.Optimizer) -> None:
        """Make the gradients of `opt`'s parameters the global batch's (distributed runs)."""
        if self.sync is not None:
            self.sync([p for g in opt.param_groups for p in g["params"]])

    def start_step(self) -> None:
        """Clear every gradient of the model before a training step."""
        for p in self._model_parameters:
            p.grad = None
        self._fresh = True

    @property
    def names(self) -> list[str]:
        return list(self.optimizers)

    def parameters(self) -> list[nn.Parameter]:
        """Every parameter some optimizer of this stage steps."""
        return [p for o in self.optimizers.values() for g in o.param_groups for p in g["params"]]

    def step(
        self, loss: Tensor, name: str = MAIN, reevaluate: Callable[[], Tensor] | None = None
    ) -> None:
        if name not in self.optimizers:
            raise KeyError(f"optimizer: unknown {name!r}; this stage has {self.names}")
        opt, scaler = self.optimizers[name], self.scalers[name]
        if isinstance(opt, torch.optim.LBFGS):
            self._step_lbfgs(opt, name, loss, reevaluate)
            return
        if not self._fresh:  # an earlier phase of this step may have left gradients here
            opt.zero_grad(set_to_none=True)
        self._fresh = False
        with self.no_autocast():
            scaler.scale(loss).backward()
        self._sync(opt)
        if self.config.grad_clip_norm is not None:
            scaler.unscale_(opt)  # clip the true gradients, after backward
            self._clip(opt, name)
        scaler.step(opt)
        scaler.update()

    def _clip(self, opt: torch.optim.Optimizer, name: str) -> None:
        params = [p for g in opt.param_groups for p in g["params"]]
        norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip_norm)
        self.metrics[grad_norm_key(name)] = norm.detach()

    def _step_lbfgs(
        self,
        opt: torch.optim.LBFGS,
        name: str,
        loss: Tensor,
        reevaluate: Callable[[], Tensor] | None,
    ) -> None:
        """LBFGS evaluates the loss up to `max_iter` times per step: the first evaluation is
        `loss`, the next ones `reevaluate()` (no gradient scaling: fp32 and bf16 only)."""
        if reevaluate is None:
            raise ValueError(
                f"optimizer {name!r}: lbfgs re-evaluates the loss; this model's training_step "
                "does not say how (pass reevaluate to step)"
            )
        first = [loss]
        self._fresh = False

        def closure() -> Tensor:
            opt.zero_grad(set_to_none=True)
            current = first.pop() if first else reevaluate()
            with self.no_autocast():
                current.backward()
            self._sync(opt)
            if self.config.grad_clip_norm is not None:
                self._clip(opt, name)
            return current.detach() if self.sync_loss is None else self.sync_loss(current)

        opt.step(closure)

    def take_metrics(self) -> dict[str, Tensor]:
        """The gradient norms recorded since the last call."""
        metrics, self.metrics = self.metrics, {}
        return metrics

    def end_epoch(self, monitored_loss: float) -> None:
        for scheduler in self.schedulers.values():
            step_scheduler(scheduler, monitored_loss)

    def learning_rates(self) -> dict[str, float]:
        return {name: float(opt.param_groups[0]["lr"]) for name, opt in self.optimizers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {
                n: None if s is None else s.state_dict() for n, s in self.schedulers.items()
            },
            "scalers": {
                n: s.state_dict() if s.is_enabled() else None for n, s in self.scalers.items()
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore every optimizer, scheduler and scaler; the names must be this stage's."""
        saved = sorted(state["optimizers"])
        if saved != sorted(self.optimizers):
            raise ValueError(f"checkpoint: optimizers {saved}, the model now has {self.names}")
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
            scheduler = self.schedulers[name]
            if scheduler is not None and state["schedulers"].get(name) is not None:
                scheduler.load_state_dict(state["schedulers"][name])
            scaler = self.scalers[name]
            if scaler.is_enabled() and state["scalers"].get(name) is not None:
                scaler.load_state_dict(state["scalers"][name])
