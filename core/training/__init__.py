"""Training: one `Trainer` for every model (stages, checkpoints, exact resume) and callbacks."""

from core.training.callbacks import (
    Callback,
    MetricsLogger,
    ProgressBar,
    StopOnEvent,
    TimeLimit,
    TrainerState,
)
from core.training.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint
from core.training.config import SchedulerConfig, TrainerConfig
from core.training.trainer import Trainer, TrainingError, TrainResult

__all__ = [
    "Callback",
    "CheckpointError",
    "MetricsLogger",
    "ProgressBar",
    "SchedulerConfig",
    "StopOnEvent",
    "TimeLimit",
    "TrainResult",
    "Trainer",
    "TrainerConfig",
    "TrainerState",
    "TrainingError",
    "latest_checkpoint",
    "load_checkpoint",
]
