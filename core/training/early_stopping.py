"""Early stopping on any epoch metric, and the validation split a run without eval data can
hold out: both deterministic, and the stopper's counters checkpointed for exact resumes."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from core.training.callbacks import TrainerState
from core.training.config import EarlyStopping

REASON = "early stopping"  # how a TrainResult's stop_reason starts when it stopped this way


class EarlyStopper:
    """Counts the epochs since `spec.metric` last improved by more than `min_delta`."""

    def __init__(self, spec: EarlyStopping | None) -> None:
        self.spec = spec
        self.best: float | None = None
        self.bad_epochs = 0

    def value(self, state: TrainerState) -> float:
        assert self.spec is not None
        side, _, name = self.spec.metric.partition("_")
        metrics = state.train_metrics if side == "train" else state.eval_metrics
        if name not in metrics:
            known = [f"train_{k}" for k in state.train_metrics]
            known += [f"eval_{k}" for k in state.eval_metrics]
            raise ValueError(
                f"early_stopping.metric: {self.spec.metric!r} is not logged by this run; "
                f"it logs {known}"
            )
        return metrics[name]

    def update(self, state: TrainerState, epoch: int) -> bool:
        """Record the epoch's metric; True when training should stop."""
        spec = self.spec
        if spec is None or epoch < spec.start_epoch:
            return False
        value = self.value(state)
        sign = 1.0 if spec.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > spec.min_delta:
            self.best, self.bad_epochs = value, 0
            return False
        self.bad_epochs += 1
        return self.bad_epochs >= spec.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.bad_epochs = state.get("best"), state.get("bad_epochs", 0)


def split_off_validation(train: Any, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """(rest, held out): `fraction` of the samples (at least one), drawn from `seed`."""
    n = len(train)
    held = max(1, round(n * fraction))
    if held >= n:
        raise ValueError(f"validation_split: {n} samples are too few to hold out {fraction}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return train.subset(order[held:].sort().values), train.subset(order[:held].sort().values)
