"""`TrainerConfig`: every training option, typed and validated (unknown fields are errors)."""

from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.training.device_data import DataOnDevice
from core.training.lean_adam import LeanAdam, LeanAdamW
from core.training.trackers.specs import TrackerSpec

OptimizerName = Literal["adam", "adamw", "sgd", "rmsprop", "lbfgs"]
OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": LeanAdam,  # torch's Adam, its fused step without the per-step bookkeeping
    "adamw": LeanAdamW,
    "sgd": torch.optim.SGD,
    "rmsprop": torch.optim.RMSprop,
    "lbfgs": torch.optim.LBFGS,  # re-evaluates the step's loss (DCCAE's upstream optimizer)
}
MAX_EPOCHS = 100_000
LBFGS_CAPS = {"max_iter": 100, "max_eval": 125}  # bounds on an lbfgs step's loss evaluations


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StepScheduler(_Strict):
    """Multiply the learning rate by `gamma` every `step_size` epochs."""

    kind: Literal["step"] = "step"
    step_size: int = Field(gt=0, description="epochs between two decays")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor")


class CosineScheduler(_Strict):
    """Cosine decay from the learning rate to `eta_min` over `t_max` epochs."""

    kind: Literal["cosine"] = "cosine"
    t_max: int | None = Field(
        None, gt=0, description="epochs of one half-cosine; None = the stage's length"
    )
    eta_min: float = Field(0.0, ge=0, description="final learning rate")


class PlateauScheduler(_Strict):
    """Decay when the eval loss (train loss without eval data) stops improving."""

    kind: Literal["plateau"] = "plateau"
    factor: float = Field(0.1, gt=0, lt=1, description="decay factor")
    patience: int = Field(10, ge=0, description="epochs without improvement before a decay")
    threshold: float = Field(1e-4, ge=0, description="relative improvement that counts")
    min_lr: float = Field(0.0, ge=0, description="lower bound of the learning rate")


class EarlyStopping(_Strict):
    """Stop when `metric` has not improved by more than `min_delta` for `patience` epochs."""

    metric: str = Field(
        "eval_loss",
        pattern=r"^(train|eval)_[A-Za-z0-9_/]+$",
        description="an epoch metric as metrics.jsonl names it: eval_loss, train_loss, eval_<m>",
    )
    patience: int = Field(10, ge=1, le=MAX_EPOCHS, description="epochs without improvement")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as improvement")
    mode: Literal["min", "max"] = Field("min", description="min: lower is better")
    start_epoch: int = Field(1, ge=1, description="epochs before this one never count")


class ExponentialScheduler(_Strict):
    """Multiply the learning rate by `gamma` after every epoch."""

    kind: Literal["exponential"] = "exponential"
    gamma: float = Field(gt=0, le=1, description="decay factor per epoch")


SchedulerConfig = Annotated[
    StepScheduler | CosineScheduler | PlateauScheduler | ExponentialScheduler,
    Field(discriminator="kind"),
]


class TrainerConfig(_Strict):
    """How a model is trained. Saved in checkpoints and in the model's training.json."""

    epochs: int = Field(10, gt=0, le=MAX_EPOCHS, description="epochs in total, all stages")
    batch_size: int = Field(64, gt=0, le=1_000_000, description="training samples per step")
    eval_batch_size: int | None = Field(
        None, gt=0, le=1_000_000, description="evaluation batch size; None = batch_size"
    )
    optimizer: OptimizerName = Field("adam", description="optimizer, rebuilt at every stage")
    optimizer_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="extra optimizer arguments (betas, weight_decay, momentum, ...)",
    )
    learning_rate: float = Field(1e-3, gt=0, le=10, description="initial learning rate")
    scheduler: SchedulerConfig | None = Field(
        None, description="per-epoch learning-rate schedule: {'kind': ..., ...}; None = constant"
    )
    grad_clip_norm: float | None = Field(
        None, gt=0, description="clip the global gradient norm to this (after backward)"
    )
    seed: int = Field(0, ge=0, lt=2**63, description="seeds torch, numpy, random and shuffling")
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda|cuda:\d+)$",
        description="'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        "no", description="autocast dtype; fp16 (with loss scaling) needs CUDA"
    )
    checkpoint_every_epochs: int = Field(
        1, ge=0, description="epochs between checkpoints; 0 = only at the end or on stop"
    )
    checkpoint_every_steps: int | None = Field(
        None, gt=0, description="also checkpoint every N optimizer steps (mid-epoch)"
    )
    keep_best: bool = Field(
        False, description="keep the weights of the lowest eval loss; the final model is those"
    )
    keep_best_from_epoch: int = Field(
        1, ge=1, description="keep_best considers epochs from this one on (after a warmup)"
    )
    early_stopping: EarlyStopping | None = Field(
        None, description="{metric, patience, min_delta, mode, start_epoch}; None = never"
    )
    preview_every_epochs: int | None = Field(
        None,
        gt=0,
        description="every N epochs (and after the last) write PNG grids of reconstructions "
        "and cross-modal generations of the first eval samples to <output_dir>/previews and "
        "the trackers",
    )
    preview_samples: int = Field(8, gt=0, le=64, description="samples (columns) per preview")
    validation_split: float | None = Field(
        None,
        gt=0,
        lt=0.5,
        description="without eval data, hold out this fraction of the training set (drawn "
        "from the seed) and evaluate on it",
    )
    output_dir: str | None = Field(
        None, description="checkpoints, metrics.jsonl, model/ and best/; None = write nothing"
    )
    num_workers: int = Field(0, ge=0, le=64, description="DataLoader worker processes")
    data_on_device: DataOnDevice = Field(
        "auto",
        description="keep an in-memory dataset on the training device and index its batches "
        "there (no copy from host memory per step, which blocks the host on a GPU): 'auto' "
        "when it takes at most a quarter of the GPU's free memory (always on the CPU, where "
        "it already is), 'always', or 'never' (a DataLoader copies each batch); needs "
        "num_workers 0",
    )
    drop_last: bool = Field(False, description="drop the last incomplete training batch")
    compile: bool = Field(
        False,
        description="torch.compile the model's forward for full training batches: a one-off "
        "compile (~20-40 s on CPU) for faster steps; pays off on long runs (bench/RESULTS.md)",
    )
    fused_step: bool = Field(
        True,
        description="with compile: each full training step (loss, gradients, clipping, Adam or "
        "AdamW update) as one compiled graph where the step is the default one with one Adam or "
        "AdamW in fp32 on the CPU in one process (core/training/fused_step.py): compiled steps "
        "11-39% faster, the same maths to float rounding; else the compiled forward only",
    )
    keep_freed_cpu_memory: bool = Field(
        True,
        description="on the CPU (glibc), keep the memory a step frees for the next step instead "
        "of returning it to the OS and faulting it back in (core/training/allocator.py): up to "
        "43% faster steps with large activations, same results; process-wide, resident memory "
        "stays at the steps' peak",
    )
    flush_denormals: bool = Field(
        True,
        description="on the CPU, compute denormal floats (magnitude under 1.2e-38) as zeros "
        "while training (core/training/denormals.py): Adam's moments of parameters whose "
        "gradient stays zero decay into them after ~800 steps and slow steps up to 1.6x; "
        "only such tiny values change",
    )
    log_every_steps: int = Field(
        10, gt=0, description="steps between per-step metrics sent to callbacks (progress bar)"
    )
    trackers: list[TrackerSpec] = Field(
        default_factory=list,
        max_length=8,
        description="experiment trackers fed with the config, step and epoch metrics and "
        "previews: {'kind': 'tensorboard'|'mlflow'|'wandb', ...} (optional dependencies)",
    )

    @field_validator("optimizer_kwargs")
    @classmethod
    def _no_lr(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "lr" in v:
            raise ValueError("optimizer_kwargs: set the learning rate with learning_rate, not lr")
        return v

    @model_validator(mode="after")
    def _check_optimizer_kwargs(self) -> TrainerConfig:
        allowed = set(inspect.signature(OPTIMIZERS[self.optimizer]).parameters) - {"params", "lr"}
        unknown = sorted(set(self.optimizer_kwargs) - allowed)
        if unknown:
            raise ValueError(
                f"optimizer_kwargs: {unknown} not accepted by {self.optimizer}; "
                f"known: {sorted(allowed)}"
            )
        if self.optimizer == "lbfgs":
            if self.mixed_precision == "fp16":
                raise ValueError("optimizer: lbfgs runs without gradient scaling; use fp32 or bf16")
            for key, cap in LBFGS_CAPS.items():  # loss evaluations per step: the step's cost
                value = self.optimizer_kwargs.get(key)
                if value is not None and not (isinstance(value, int) and 1 <= value <= cap):
                    raise ValueError(f"optimizer_kwargs.{key}: an integer from 1 to {cap}")
        return self

    @model_validator(mode="after")
    def _check_data_on_device(self) -> TrainerConfig:
        if self.data_on_device == "always" and self.num_workers:
            raise ValueError(
                "data_on_device: 'always' indexes batches on the device without a DataLoader; "
                f"num_workers must be 0, got {self.num_workers}"
            )
        return self

    @property
    def effective_eval_batch_size(self) -> int:
        return self.eval_batch_size or self.batch_size
