"""The interface every experiment tracker implements, and the callback that feeds them."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from core.training.callbacks import Callback, TrainerState, writing_process


class Tracker(Protocol):
    """One experiment-tracking run: configuration, metrics by step, images, then finish."""

    def log_config(self, config: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        """`image` [H, W, 3] uint8."""

    def log_report(self, name: str, report: dict[str, Any], step: int) -> None:
        """A JSON report (an evaluation's), whole, beside its numbers as metrics."""

    def finish(self, status: str) -> None: ...

    def link(self) -> dict[str, Any]:
        """Where the run is (its folder, id or URI), for job records and summaries."""


class TrackerCallback(Callback):
    """Sends a run's configuration, step metrics (`step/<name>`), epoch metrics
    (`train/<name>`, `eval/<name>`, `lr`) and images to its trackers, from rank 0 only."""

    def __init__(self, trackers: list[Tracker], config: dict[str, Any]) -> None:
        self.trackers = trackers if writing_process() else []
        self.config = config

    def on_train_start(self, state: TrainerState) -> None:
        for t in self.trackers:
            t.log_config(self.config)

    def on_step_end(self, state: TrainerState) -> None:
        if state.step_metrics:
            metrics = {f"step/{k}": v for k, v in state.step_metrics.items()}
            for t in self.trackers:
                t.log_metrics(metrics, state.global_step)

    def on_epoch_end(self, state: TrainerState) -> None:
        metrics = {"epoch": float(state.epoch), "lr": state.lr}
        metrics |= {f"train/{k}": v for k, v in state.train_metrics.items()}
        metrics |= {f"eval/{k}": v for k, v in state.eval_metrics.items()}
        for t in self.trackers:
            t.log_metrics(metrics, state.global_step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        for t in self.trackers:
            t.log_image(name, image, step)

    def log_report(self, name: str, report: dict[str, Any], step: int) -> None:
        """`report`'s numbers as `<name>/<path>` metrics, and the report itself."""
        numbers = {f"{name}/{k}": v for k, v in numeric_leaves(report).items()}
        for t in self.trackers:
            t.log_metrics(numbers, step)
            t.log_report(name, report, step)

    def on_train_end(self, state: TrainerState) -> None:
        status = "stopped" if state.should_stop else "finished"
        for t in self.trackers:
            t.finish(status)

    def links(self) -> list[dict[str, Any]]:
        return [t.link() for t in self.trackers]


def numeric_leaves(tree: Any, prefix: str = "") -> dict[str, float]:
    """The finite numbers of a JSON-like tree by their "/"-joined paths (booleans left out)."""
    import math

    out: dict[str, float] = {}
    if isinstance(tree, dict):
        for key, value in tree.items():
            out |= numeric_leaves(value, f"{prefix}{key}/")
    elif isinstance(tree, int | float) and not isinstance(tree, bool) and math.isfinite(tree):
        out[prefix.rstrip("/")] = float(tree)
    return out

