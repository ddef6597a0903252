"""Progress, heartbeat and cooperative cancel for a running job.

`Heartbeat` is a thread that renews the job's lease and polls its cancel flag (setting an
event); `JobProgress` is a Trainer callback that writes epoch, step, metrics and ETA to the
job record (throttled) and stops training at the next step once the event is set. Writes
that fail (the store restarting) are skipped: the next one catches up.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from core.training.callbacks import Callback, TrainerState
from workers.jobs import JobStore, lease_holder

log = logging.getLogger("workers.progress")


class Heartbeat:
    """Renews `owner`'s lease every second (or lease/3) and sets `cancel` on a cancel request."""

    def __init__(self, store: JobStore, job_id: str, owner: str, lease_s: float) -> None:
        self.store, self.job_id, self.owner, self.lease_s = store, job_id, owner, lease_s
        self.cancel = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def beat(self) -> None:
        def renew(job: dict[str, Any]) -> dict[str, Any] | None:
            lease = job.get("lease") or {}
            if lease.get("owner") not in (None, self.owner):
                return None  # taken over: leave it to the new owner
            expires = time.time() + self.lease_s
            return {**job, "lease": {"owner": self.owner, **lease_holder(), "expires": expires}}

        job = self.store.update(self.job_id, renew)
        if job.get("cancel_requested"):
            self.cancel.set()

    def _run(self) -> None:
        while not self._stop.wait(min(1.0, self.lease_s / 3)):
            try:
                self.beat()
            except Exception as err:  # the store may be restarting: try again next time
                log.warning("job %s: heartbeat failed: %s", self.job_id, err)


class JobProgress(Callback):
    """Writes training progress to the job record and requests a stop on cancel."""

    def __init__(self, store: JobStore, job_id: str, cancel: threading.Event, every_s: float):
        self.store, self.job_id, self.cancel, self.every_s = store, job_id, cancel, every_s
        self._last = 0.0
        self._metrics: dict[str, float] = {}
        self.resumed_from_epoch: int | None = None
        self.start_step = 0
        self._t0 = time.monotonic()

    def _write(self, state: TrainerState, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        done = state.global_step - self.start_step
        left = state.total_steps - state.global_step
        rate = done / max(now - self._t0, 1e-9)
        progress = {
            "epoch": state.epoch,
            "epochs": state.epochs,
            "completed_epochs": state.completed_epochs,
            "step": state.global_step,
            "total": state.total_steps,
            "fraction": round(state.global_step / max(state.total_steps, 1), 4),
            "metrics": dict(self._metrics),
            "eta_s": round(left / rate, 1) if done and rate > 0 else None,
            "resumed_from_epoch": self.resumed_from_epoch,
        }
        try:
            self.store.update(self.job_id, lambda job: {**job, "progress": progress})
        except Exception as err:
            log.warning("job %s: progress not written: %s", self.job_id, err)

    def on_train_start(self, state: TrainerState) -> None:
        self.resumed_from_epoch = state.completed_epochs if state.resumed else None
        self.start_step = state.global_step
        self._t0 = time.monotonic()
        self._write(state, force=True)

    def on_step_end(self, state: TrainerState) -> None:
        if self.cancel.is_set():
            state.request_stop("cancelled")
        if state.step_metrics:
            self._metrics = {f"step_{k}": v for k, v in state.step_metrics.items()}
        self._write(state)

    def on_epoch_end(self, state: TrainerState) -> None:
        self._metrics = {
            **{f"train_{k}": v for k, v in state.train_metrics.items()},
            **{f"eval_{k}": v for k, v in state.eval_metrics.items()},
        }
        self._write(state, force=True)

    def on_epoch_start(self, state: TrainerState) -> None:
        if self.cancel.is_set():
            state.request_stop("cancelled")

    def follow(self, state: TrainerState) -> None:
        """Report a run that another process trains (its `StateFile`): the first call starts
        the clock, later ones write throttled progress with the last epoch's (else step's)
        metrics."""
        if self._last == 0.0:
            self.on_train_start(state)
            return
        epoch = {
            **{f"train_{k}": v for k, v in state.train_metrics.items()},
            **{f"eval_{k}": v for k, v in state.eval_metrics.items()},
        }
        step = {f"step_{k}": v for k, v in state.step_metrics.items()}
        self._metrics = epoch or step or self._metrics
        self._write(state)


class JobCancelled(Exception):
    """Raised from a work-progress report once the job's cancel was requested."""


class WorkProgress:
    """Progress of a job that is not a training run (augmentation, evaluation): `report(done,
    total, phase)` writes step, total, fraction, phase and ETA to the job record (throttled, and
    always at the end) and raises `JobCancelled` once a cancel was requested."""

    def __init__(self, store: JobStore, job_id: str, cancel: threading.Event, every_s: float):
        self.store, self.job_id, self.cancel, self.every_s = store, job_id, cancel, every_s
        self._last = 0.0
        self._t0 = time.monotonic()

    def report(self, done: int, total: int, phase: str | None = None) -> None:
        if self.cancel.is_set():
            raise JobCancelled
        now = time.monotonic()
        if done < total and now - self._last < self.every_s:
            return
        self._last = now
        rate = done / max(now - self._t0, 1e-9)
        progress = {
            "step": done,
            "total": total,
            "fraction": round(done / max(total, 1), 4),
            "phase": phase,
            "eta_s": round((total - done) / rate, 1) if done and rate > 0 else None,
        }
        try:
            self.store.update(self.job_id, lambda job: {**job, "progress": progress})
        except Exception as err:
            log.warning("job %s: progress not written: %s", self.job_id, err)
