"""Builders the Trainer needs: device, optimizers, schedulers and the epoch plan of model stages."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from core.models.optimization import OptimizerSpec, Stage
from core.training.config import (
    OPTIMIZERS,
    CosineScheduler,
    ExponentialScheduler,
    PlateauScheduler,
    StepScheduler,
    TrainerConfig,
)

Scheduler = torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau


def resolve_device(config: TrainerConfig, local_rank: int | None = None) -> torch.device:
    """`auto` -> CUDA when available; an explicit CUDA device that is absent is an error. In a
    distributed run (`local_rank` given) a CUDA run uses the process's own GPU."""
    if config.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(config.device)
    if local_rank is not None and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device: {config.device!r} requested but CUDA is not available")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: {config.device!r} requested but only "
                f"{torch.cuda.device_count()} CUDA device(s) exist"
            )
    if config.mixed_precision == "fp16" and device.type != "cuda":
        raise ValueError("mixed_precision: 'fp16' needs a CUDA device; use 'bf16' or 'no' on CPU")
    return device


def autocast_dtype(config: TrainerConfig) -> torch.dtype | None:
    return {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}[config.mixed_precision]


@dataclass(frozen=True)
class StageSpan:
    """Stage `index` runs epochs `first`..`last` (1-based, inclusive)."""

    index: int
    stage: Stage
    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1


def plan_stages(stages: list[Stage], epochs: int) -> list[StageSpan]:
    """Lay the model's stages over `epochs`; the last stage may say None (= the rest).

    Stages past `epochs` are cut; epochs past the declared stages are an error, so a config can
    never silently train a stage longer than the model asked for.
    """
    if not stages:
        stages = [Stage("train")]
    spans, start = [], 1
    for i, stage in enumerate(stages):
        if stage.epochs is None and i != len(stages) - 1:
            raise ValueError(f"stages: only the last stage may have epochs=None ({stage.name!r})")
        if stage.epochs is not None and stage.epochs <= 0:
            raise ValueError(f"stages: stage {stage.name!r} needs a positive number of epochs")
        end = epochs if stage.epochs is None else min(epochs, start + stage.epochs - 1)
        spans.append(StageSpan(i, stage, start, end))
        start = end + 1
        if start > epochs:
            break
    if start <= epochs:
        raise ValueError(
            f"epochs: {epochs} but the model's stages cover only {start - 1} "
            f"({[s.name for s in stages]}); lower epochs"
        )
    return spans


def span_of(spans: list[StageSpan], epoch: int) -> StageSpan:
    for span in spans:
        if span.first <= epoch <= span.last:
            return span
    raise ValueError(f"epoch {epoch} is outside the planned stages")


def trainable_parameters(params: Iterable[nn.Parameter], where: str) -> list[nn.Parameter]:
    """The parameters that require gradients, each once; none at all is an error."""
    unique: dict[int, nn.Parameter] = {}
    for p in params:
        if p.requires_grad:
            unique.setdefault(id(p), p)
    if not unique:
        raise ValueError(f"{where}: has no trainable parameters")
    return list(unique.values())


def build_optimizer(
    spec: OptimizerSpec, config: TrainerConfig, where: str
) -> torch.optim.Optimizer:
    """An optimizer over `spec`'s parameters; kind, learning rate and keyword arguments from
    `spec` where it sets them, else from the config (its kwargs only for its own kind)."""
    kind = spec.optimizer or config.optimizer
    if kind not in OPTIMIZERS:
        raise ValueError(f"{where}: unknown optimizer {kind!r}; known: {sorted(OPTIMIZERS)}")
    if spec.options is not None:
        options = spec.options
    else:
        options = config.optimizer_kwargs if kind == config.optimizer else {}
    lr = config.learning_rate if spec.learning_rate is None else spec.learning_rate
    params = trainable_parameters(spec.parameters, where)
    if not {"fused", "foreach"} & set(options):
        options = {**multi_tensor(kind, params), **options}
    try:
        return OPTIMIZERS[kind](params, lr=lr, **options)
    except TypeError as err:
        raise ValueError(f"{where}: {kind} does not accept options {options} ({err})") from None


FUSED = ("adam", "adamw", "sgd")  # kinds with one fused kernel for all parameters (CPU and CUDA)
NO_MULTI_TENSOR = ("lbfgs",)  # kinds with neither option (one flat parameter vector already)


def multi_tensor(kind: str, params: list[nn.Parameter]) -> dict[str, bool]:
    """The fastest update torch has for `kind` on these parameters: `fused` (one kernel for all
    parameters) or `foreach` (one op per kind of operation); torch's own default on the CPU
    is a loop of ~10 ops per parameter tensor. The update's maths is the same (results agree
    to float rounding); `optimizer_kwargs` may set `fused` or `foreach` otherwise."""
    devices = {p.device.type for p in params}
    if kind in FUSED and devices <= {"cpu", "cuda"} and all(p.is_floating_point() for p in params):
        return {"fused": True}
    return {} if kind in NO_MULTI_TENSOR else {"foreach": True}


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainerConfig, stage_epochs: int
) -> Scheduler | None:
    """A per-epoch scheduler for one stage; `stage_epochs` is the default cosine period."""
    s = config.scheduler
    sched = torch.optim.lr_scheduler
    if s is None:
        return None
    if isinstance(s, StepScheduler):
        return sched.StepLR(optimizer, step_size=s.step_size, gamma=s.gamma)
    if isinstance(s, CosineScheduler):
        return sched.CosineAnnealingLR(optimizer, T_max=s.t_max or stage_epochs, eta_min=s.eta_min)
    if isinstance(s, PlateauScheduler):
        return sched.ReduceLROnPlateau(
            optimizer, factor=s.factor, patience=s.patience, threshold=s.threshold, min_lr=s.min_lr
        )
    if isinstance(s, ExponentialScheduler):
        return sched.ExponentialLR(optimizer, gamma=s.gamma)
    raise TypeError(f"scheduler: unsupported {s!r}")


def step_scheduler(scheduler: Scheduler | None, monitored_loss: float) -> None:
    """Advance one epoch; ReduceLROnPlateau needs the monitored loss, the others do not."""
    if scheduler is None:
        return
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(monitored_loss)
    else:
        scheduler.step()
