"""What every way of running a train job shares: its model, data and TrainerConfig, and what
its record says of the finished run (workers/jobs_train.py in one process,
workers/train_ranks.py in each torchrun process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers import datasets
from workers.settings import WorkerSettings
from workers.specs import TrainSpec


def prepare(settings: WorkerSettings, spec: TrainSpec, out: Path) -> tuple[Any, Any, Any, Any]:
    """(model, train data, test data or None, TrainerConfig) of a train job writing to `out`."""
    import torch

    from core.data import mcar
    from core.models.registry import build_model
    from core.training import TrainerConfig

    config = TrainerConfig.model_validate({**spec.trainer, "output_dir": str(out)})
    info = datasets.describe(settings, spec.dataset)
    train = datasets.load(settings, spec.dataset, "train")
    with_test = spec.eval and datasets.has_split(settings, spec.dataset, "test")
    test = datasets.load(settings, spec.dataset, "test") if with_test else None
    if spec.missing_ratio:
        train = mcar(train, spec.missing_ratio, seed=config.seed)
    torch.manual_seed(config.seed)
    model = build_model({"modalities": info["modalities"], **spec.model})
    return model, train, test, config


def outcome(result: Any, resumed_from_epoch: int | None, world_size: int) -> dict[str, Any]:
    """What a job record says of a finished training run (a TrainResult's fields)."""
    return {
        "epochs_run": result.epochs_run,
        "global_step": result.global_step,
        "final_metrics": result.final_metrics,
        "resumed_from_epoch": resumed_from_epoch,
        "world_size": world_size,
        "stopped_early": result.stopped_early,
        "stop_reason": result.stop_reason,
        "trackers": result.trackers,  # their folders become <data>/... (workers/redaction.py)
    }
