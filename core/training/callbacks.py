"""Training callbacks: progress bar, JSON-lines metrics log, cancellation and time limits.

Every hook receives the `TrainerState`. A callback stops training cooperatively by calling
`state.request_stop(reason)` (or returning True from a hook); the Trainer stops at the next step
boundary, writes a checkpoint and reports `stopped_early`.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

METRICS_FILE = "metrics.jsonl"


@dataclass
class TrainerState:
    """What callbacks see. `epoch` is the running epoch (1-based); metrics are plain floats.

    `train_metrics` / `eval_metrics` are the last completed epoch's; `step_metrics` holds the
    current step's metrics on every `log_every_steps`-th step and is empty on the others.
    """

    epochs: int
    total_steps: int
    steps_per_epoch: int
    epoch: int = 0
    completed_epochs: int = 0
    global_step: int = 0
    step_in_epoch: int = 0
    stage: int = 0
    stage_name: str = "train"
    lr: float = 0.0  # the "main" optimizer's (or the first one's)
    lrs: dict[str, float] = field(default_factory=dict)  # every optimizer's, by name
    elapsed: float = 0.0
    train_metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    step_metrics: dict[str, float] = field(default_factory=dict)
    best_epoch: int | None = None
    best_eval_loss: float | None = None
    output_dir: Path | None = None
    resumed: bool = False
    should_stop: bool = False
    stop_reason: str | None = None

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the Trainer to stop at the next step boundary (idempotent; first reason wins)."""
        if not self.should_stop:
            self.should_stop = True
            self.stop_reason = reason


def writing_process() -> bool:
    """False in the processes of a distributed run other than rank 0 (torchrun's RANK)."""
    return os.environ.get("RANK", "0") == "0"


class Callback:
    """Base class: override any hook; return True (or call `state.request_stop`) to stop."""

    def on_train_start(self, state: TrainerState) -> bool | None:
        return None

    def on_epoch_start(self, state: TrainerState) -> bool | None:
        return None

    def on_step_end(self, state: TrainerState) -> bool | None:
        return None

    def on_epoch_end(self, state: TrainerState) -> bool | None:
        return None

    def on_train_end(self, state: TrainerState) -> bool | None:
        return None


class ProgressBar(Callback):
    """A tqdm bar over all steps; shown only when `stream` is a terminal unless `force`."""

    def __init__(self, force: bool | None = None, stream: IO[str] | None = None) -> None:
        self.stream = stream
        self.force = force
        self.bar: Any = None

    def _enabled(self) -> bool:
        if not writing_process():  # one bar for a distributed run: rank 0's
            return False
        if self.force is not None:
            return self.force
        stream = self.stream or sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())

    def on_train_start(self, state: TrainerState) -> None:
        if not self._enabled():
            return
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.total_steps,
            initial=state.global_step,
            file=self.stream or sys.stderr,
            dynamic_ncols=True,
            unit="step",
        )

    def on_epoch_start(self, state: TrainerState) -> None:
        if self.bar is not None:
            self.bar.set_description(f"epoch {state.epoch}/{state.epochs} ({state.stage_name})")

    def on_step_end(self, state: TrainerState) -> None:
        if self.bar is None:
            return
        self.bar.update(state.global_step - self.bar.n)
        if state.step_metrics:
            self.bar.set_postfix(loss=f"{state.step_metrics.get('loss', float('nan')):.4g}")

    def on_epoch_end(self, state: TrainerState) -> None:
        if self.bar is not None:
            shown = {"train": state.train_metrics.get("loss")}
            if "loss" in state.eval_metrics:
                shown["eval"] = state.eval_metrics["loss"]
            self.bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items() if v is not None})

    def on_train_end(self, state: TrainerState) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class MetricsLogger(Callback):
    """Appends one JSON line per epoch to `path` (default `<output_dir>/metrics.jsonl`).

    Fields: epoch, step, stage, lr, lrs (every optimizer's, by name, when the model has several),
    elapsed (seconds), train_<metric>, eval_<metric>. On a fresh
    run the file is emptied; on a resume, lines for epochs after the checkpoint are dropped.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)

    def on_train_start(self, state: TrainerState) -> None:
        if not writing_process():  # rank 0 writes the (reduced) metrics of a distributed run
            self.path = None
            return
        if self.path is None and state.output_dir is not None:
            self.path = state.output_dir / METRICS_FILE
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if state.resumed and self.path.is_file():
            for line in self.path.read_text().splitlines():
                try:
                    if json.loads(line).get("epoch", 0) <= state.completed_epochs:
                        kept.append(line)
                except json.JSONDecodeError:
                    continue
        self.path.write_text("".join(f"{line}\n" for line in kept))

    def on_epoch_end(self, state: TrainerState) -> None:
        if self.path is None:
            return
        record: dict[str, Any] = {
            "epoch": state.epoch,
            "step": state.global_step,
            "stage": state.stage_name,
            "lr": state.lr,
            "elapsed": round(state.elapsed, 3),
        }
        if len(state.lrs) > 1:
            record["lrs"] = dict(state.lrs)
        record.update({f"train_{k}": v for k, v in state.train_metrics.items()})
        record.update({f"eval_{k}": v for k, v in state.eval_metrics.items()})
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


class StopOnEvent(Callback):
    """Stops when `event` is set (a `threading.Event`) or returns True (a callable): cancel."""

    def __init__(self, event: threading.Event | Callable[[], bool], reason: str = "cancelled"):
        self.check = event.is_set if isinstance(event, threading.Event) else event
        self.reason = reason

    def _poll(self, state: TrainerState) -> None:
        if self.check():
            state.request_stop(self.reason)

    on_epoch_start = _poll
    on_step_end = _poll


class TimeLimit(Callback):
    """Stops once `seconds` of wall time have passed since this run's start (not since resume)."""

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError(f"seconds: must be positive, got {seconds}")
        self.seconds = seconds
        self.start = 0.0

    def on_train_start(self, state: TrainerState) -> None:
        self.start = time.monotonic()

    def _poll(self, state: TrainerState) -> None:
        if time.monotonic() - self.start >= self.seconds:
            state.request_stop(f"time limit of {self.seconds:g} s reached")

    on_epoch_start = _poll
    on_step_end = _poll


class StateFile(Callback):
    """Writes the `TrainerState` as JSON to `path` (atomically; at most every `every_s`
    seconds, and at each epoch's and the run's end), so another process can follow the run: a
    job worker watching the torchrun processes it launched. Rank 0 only."""

    def __init__(self, path: str | Path, every_s: float = 1.0) -> None:
        self.path, self.every_s = Path(path), every_s
        self._last = 0.0
        self.resumed_from_epoch: int | None = None

    def _write(self, state: TrainerState, force: bool = False) -> None:
        now = time.monotonic()
        if not writing_process() or (not force and now - self._last < self.every_s):
            return
        self._last = now
        data = {k: v for k, v in vars(state).items() if k != "output_dir"}
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def on_train_start(self, state: TrainerState) -> None:
        self.resumed_from_epoch = state.completed_epochs if state.resumed else None
        self._write(state, force=True)

    def on_step_end(self, state: TrainerState) -> None:
        self._write(state)

    def on_epoch_end(self, state: TrainerState) -> None:
        self._write(state, force=True)

    def on_train_end(self, state: TrainerState) -> None:
        self._write(state, force=True)


def read_state(path: str | Path) -> TrainerState | None:
    """The state a `StateFile` last wrote (None before its first write)."""
    try:
        return TrainerState(**json.loads(Path(path).read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
