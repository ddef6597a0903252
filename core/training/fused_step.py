"""`FusedStep`: a whole training step (the loss, its gradients, gradient clipping and the Adam or
AdamW update) as one compiled graph.

With `compile=True` and this off, a step runs the compiled forward, autograd's engine walks the
compiled backward and accumulates each parameter's gradient, then the optimizer's fused kernel
reads every gradient back: per-parameter bookkeeping in the engine, and each gradient written
to memory and read again. Here `torch.func.grad` differentiates the loss with respect to the
stage's trained parameters inside the compiled function and the update is part of the same
graph, so inductor computes each parameter's update in the kernels around its gradient and the
engine never runs: compiled steps 26-39 % faster at batch 64 and 11-21 % at batch 256 on the
CPU for the models of bench/compare (bench/step_variants.py, variant `fused`).

It covers the steps it reproduces exactly (the same maths as torch's fused Adam, to float
rounding): the model's `training_step` is the default (loss, backward, clip, step), with one
Adam or AdamW, not amsgrad, in fp32, on the CPU, in one process; other steps run the compiled
forward, as does a model the compiler cannot take as one graph (a branch on a tensor's value:
a warning says so at its first step). Buffers are inputs of the transformed loss, so a model
may update one in its forward (a running statistic). The first step of each stage runs the
ordinary way: it creates the optimizer's state as torch does, and shows which parameters the
loss reaches; the others get no update, as torch's optimizers skip a parameter without a
gradient. The optimizer's state stays torch's own tensors (updated in place), so checkpoints,
resumes and the eager steps between (an epoch's last, smaller batch) share it. Parameters'
`.grad` stays None after a fused step.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from core.models.optimization import MAIN, LossOutput, Trainable
from core.training.compiled import Compiled, summary
from core.training.config import TrainerConfig
from core.training.lean_adam import numbers_only
from core.training.optimizers import StageOptimizers, grad_norm_key

log = logging.getLogger(__name__)


def adam_scalars(lr: float, beta1: float, beta2: float, count: int) -> list[float]:
    """[lr, step size, √(bias correction 2)] of Adam's step number `count`, in double
    precision as torch's fused kernel computes them."""
    return [lr, lr / (1 - beta1**count), math.sqrt(1 - beta2**count)]


def adam_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    scalars: Tensor,
    hyper: dict[str, Any],
) -> None:
    """torch's Adam (AdamW with `hyper["decoupled"]`) update of `params` in place, with
    `scalars` from `adam_scalars`: the maths of its fused kernel, as traceable tensor ops."""
    beta1, beta2, eps, decay = hyper["beta1"], hyper["beta2"], hyper["eps"], hyper["weight_decay"]
    # one dtype for all the parameters (`unsupported` declines the others)
    lr, step_size, correction2_sqrt = scalars.to(params[0].dtype).unbind()
    for param, grad, exp_avg, exp_avg_sq in zip(params, grads, exp_avgs, exp_avg_sqs, strict=True):
        if hyper["maximize"]:
            grad = -grad
        if decay != 0:
            if hyper["decoupled"]:
                param.mul_(1 - lr * decay)
            else:
                grad = grad + decay * param
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt() / correction2_sqrt + eps
        param.sub_(step_size * exp_avg / denom)


def clipped(grads: list[Tensor], max_norm: float) -> tuple[list[Tensor], Tensor]:
    """`grads` scaled to a global 2-norm of at most `max_norm` (torch's `clip_grad_norm_`), and
    their norm before clipping."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return [g * coef for g in grads], norm


def unsupported(model: Trainable, optimizers: StageOptimizers, config: TrainerConfig) -> str | None:
    """Why a stage's steps cannot be fused (None: they can), for the log."""
    if type(model).training_step is not Trainable.training_step:
        return "the model has its own training_step"
    if list(optimizers.optimizers) != [MAIN]:
        return f"the stage has optimizers {optimizers.names}"
    opt = optimizers.optimizers[MAIN]
    if not isinstance(opt, torch.optim.Adam | torch.optim.AdamW):
        return f"the optimizer is {type(opt).__name__}, not Adam or AdamW"
    if config.mixed_precision != "no":
        return f"mixed_precision is {config.mixed_precision!r}"
    for group in opt.param_groups:
        if group["amsgrad"] or group["differentiable"]:
            return "the optimizer uses amsgrad or is differentiable"
        if not numbers_only(group):
            return "a hyperparameter of the optimizer is a tensor"
    params = [p for g in opt.param_groups for p in g["params"]]
    if len({(p.device, p.dtype) for p in params}) != 1 or not params[0].is_floating_point():
        return "the parameters are not of one device and floating dtype"
    if params[0].device.type != "cpu":
        return f"the parameters are on {params[0].device.type} (measured and tested on the CPU)"
    return None


@dataclass
class _Group:
    """One parameter group as the fused step updates it: the parameters the loss reaches,
    torch's state tensors for them, and the step count they all share."""

    params: list[Tensor]
    exp_avgs: list[Tensor]
    exp_avg_sqs: list[Tensor]
    count: int
    increment: Callable[[], None]  # adds 1 to every parameter's step tensor


def _incrementer(steps: list[Tensor]) -> Callable[[], None]:
    """A function adding 1 to each of `steps`: one op where they are the elements of one
    tensor (LeanAdam keeps them so), else one per tensor."""
    base = steps[0]._base
    if (
        base is not None
        and base.numel() == len(steps)
        and all(s._base is base for s in steps)
        and len({s.storage_offset() for s in steps}) == len(steps)
    ):
        return lambda: base.add_(1)

    def each() -> None:
        for s in steps:
            s.add_(1)

    return each


class FusedStep:
    """The fused steps of one stage: `step(batch)` trains on it and returns what the model's
    forward returned, or None where the step must run the ordinary way (the stage's first);
    `observe()` after each ordinary step reads the optimizer's state anew."""

    def __init__(
        self,
        model: nn.Module,
        optimizers: StageOptimizers,
        max_norm: float | None,
        options: dict[str, Any] | None,
    ) -> None:
        self.model = model
        self.optimizers = optimizers
        self.optimizer = optimizers.optimizers[MAIN]
        self.max_norm = max_norm
        self.decoupled = isinstance(self.optimizer, torch.optim.AdamW)
        self.reached: list[list[nn.Parameter]] | None = None  # per group, with a gradient
        self.names: list[list[str]] = []  # of `reached`, for functional_call
        self.groups: list[_Group] | None = None  # None: the state does not fit (ordinary steps)
        self.hyper: list[dict[str, Any]] = []  # constants of the traced graph
        self.compiled = Compiled(self._fused, options, fullgraph=True)
        self.broken = False  # the compile failed: every step runs the ordinary way
        self.ran = False  # a fused step has run (a later failure is no compile's)

    @property
    def fusing(self) -> bool:
        """Whether full steps are (or, before the stage's first, will be) fused; if not, they
        run the compiled forward."""
        return not self.broken and (self.reached is None or self.groups is not None)

    def observe(self) -> None:
        """After an ordinary step. The first shows which parameters the loss reaches (the same
        in every step of one compiled graph); each reads the optimizer's state anew (it
        created it, or counted a step, or a resume replaced it)."""
        if self.reached is None:
            self.reached = [
                [p for p in g["params"] if p.grad is not None] for g in self.optimizer.param_groups
            ]
            name_of = {p: n for n, p in self.model.named_parameters()}
            self.names = [[name_of[p] for p in params] for params in self.reached]
        self.groups = self._read_state()

    def step(self, batch: Any) -> LossOutput | None:
        """One fused step on `batch`: what the model's forward returned, or None (nothing done)
        where the step must run the ordinary way."""
        if self.broken or self.groups is None:
            return None
        param_groups = self.optimizer.param_groups
        self.hyper = [self._hyperparameters(g) for g in param_groups]
        scalars = [  # the learning rate too: a scheduler changes it without a recompile
            torch.tensor(
                adam_scalars(float(g["lr"]), h["beta1"], h["beta2"], group.count + 1),
                dtype=torch.float64,
            )
            for g, h, group in zip(param_groups, self.hyper, self.groups, strict=True)
        ]
        tensors = [(g.params, g.exp_avgs, g.exp_avg_sqs) for g in self.groups]
        try:
            with torch.no_grad():
                loss, metrics, norm = self.compiled(tensors, scalars, batch)
        except Exception as err:  # a model the compile cannot take whole (a graph break)
            if self.ran:
                raise
            self.broken = True
            log.warning(
                "compile: the fused training step failed (%s); the compiled forward instead",
                summary(err),
            )
            return None
        self.ran = True
        for group in self.groups:
            group.count += 1
            group.increment()
        if norm is not None:
            self.optimizers.metrics[grad_norm_key(MAIN)] = norm
        return LossOutput(loss, metrics)

    def _hyperparameters(self, group: dict[str, Any]) -> dict[str, Any]:
        """A group's hyperparameters but the learning rate: constants of the traced graph (one
        changed, the graph is traced again)."""
        return {
            "beta1": group["betas"][0],
            "beta2": group["betas"][1],
            "eps": group["eps"],
            "weight_decay": group["weight_decay"],
            "maximize": group["maximize"],
            "decoupled": self.decoupled,
        }

    def _fused(
        self, tensors: list[tuple[list[Tensor], ...]], scalars: list[Tensor], batch: Any
    ) -> tuple[Tensor, dict[str, Tensor], Tensor | None]:
        """The traced step: gradients of the loss in every group's parameters, clipped, and
        each group's update."""
        trained = [params for params, _, _ in tensors]
        buffers = dict(self.model.named_buffers())

        def loss_of(
            values: list[list[Tensor]], buffers: dict[str, Tensor]
        ) -> tuple[Tensor, tuple[Tensor, dict]]:
            pairs = zip(self.names, values, strict=True)
            replaced = {n: v for ns, vs in pairs for n, v in zip(ns, vs, strict=True)}
            # buffers are inputs too: a model may update one in place (a running statistic),
            # which the transform allows on its inputs only
            out = torch.func.functional_call(
                self.model, (replaced, buffers), (batch,), strict=False
            )
            return out.loss, (out.loss.detach(), out.metrics)

        grads, (loss, metrics) = torch.func.grad(loss_of, has_aux=True)(trained, buffers)
        norm = None
        if self.max_norm is not None:
            flat, norm = clipped([g for group in grads for g in group], self.max_norm)
            each = iter(flat)
            grads = [[next(each) for _ in group] for group in grads]
        for (params, exp_avgs, exp_avg_sqs), group_grads, group_scalars, hyper in zip(
            tensors, grads, scalars, self.hyper, strict=True
        ):
            adam_update(params, group_grads, exp_avgs, exp_avg_sqs, group_scalars, hyper)
        return loss, metrics, norm

    def _read_state(self) -> list[_Group] | None:
        """Per group, torch's state of the reached parameters, or None where a parameter has
        no state yet or their step counts differ (a bias correction per group)."""
        assert self.reached is not None
        groups = []
        for params in self.reached:
            entries = [self.optimizer.state.get(p) for p in params]
            if not params or any(not e for e in entries):
                return None
            steps = [e["step"] for e in entries]  # type: ignore[index]
            counts = {int(s) for s in steps}
            if len(counts) != 1:
                return None
            groups.append(
                _Group(
                    params,
                    [e["exp_avg"] for e in entries],  # type: ignore[index]
                    [e["exp_avg_sq"] for e in entries],  # type: ignore[index]
                    counts.pop(),
                    _incrementer(steps),
                )
            )
        return groups
