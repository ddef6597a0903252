"""`TrainResult`: what `Trainer.fit` returns (and what the CLI prints as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class TrainResult:
    """Outcome of `Trainer.fit`; `final_metrics` describe the weights left in the model."""

    epochs_run: int
    global_step: int
    train_metrics: dict[str, float]
    eval_metrics: dict[str, float]
    final_metrics: dict[str, float]
    best_epoch: int | None
    best_eval_loss: float | None
    stopped_early: bool
    stop_reason: str | None
    wall_time: float
    output_dir: str | None = None
    model_dir: str | None = None
    best_dir: str | None = None
    checkpoint: str | None = None
    metrics_log: str | None = None
    trackers: list[dict[str, Any]] = field(default_factory=list)  # where each tracker's run is
    training_info: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("training_info")
        return out


def flat_metrics(prefix: str, metrics: dict[str, float]) -> dict[str, float]:
    return {f"{prefix}_{k}": float(v) for k, v in metrics.items()}
