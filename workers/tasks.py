"""Celery tasks `mmvae.train`, `mmvae.augment`, `mmvae.evaluate`: one job id in, records out.

Each task claims its job (skipping finished, cancelled and live-leased ones, so redelivered
duplicates are harmless), runs under a heartbeat, and writes the outcome to the job record.
Torch and core are imported inside the tasks, so the worker's parent process never touches CUDA.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

import workers.recovery  # noqa: F401  (connects the worker_ready recovery hook)
from workers.context import JobContext
from workers.jobs import (
    TERMINAL,
    JobNotFound,
    JobStore,
    lease_alive,
    lease_holder,
    make_job_store,
    now_iso,
    retrying,
)
from workers.settings import WorkerSettings

log = logging.getLogger("workers.tasks")


Body = Callable[[JobContext], dict[str, Any]]


def _claim(job_id: str, owner: str, task_id: str | None, lease_s: float, store: JobStore):
    """Mark the job running under our lease; returns (job, reason to skip or None)."""
    import time

    skip: list[str] = []

    def claim(job: dict[str, Any]) -> dict[str, Any] | None:
        if job["state"] in TERMINAL:
            skip.append(f"already {job['state']}")
            return None
        now = now_iso()
        if job.get("cancel_requested"):
            skip.append("cancelled before it started")
            return {**job, "state": "cancelled", "finished": now, "lease": None}
        lease = job.get("lease")
        if lease_alive(lease) and lease.get("owner") != owner:
            skip.append(f"running elsewhere ({lease.get('host')}:{lease.get('pid')})")
            return None
        attempt = {"started": now, **lease_holder(), "task_id": task_id}
        return {
            **job,
            "state": "running",
            "started": job.get("started") or now,
            "lease": {"owner": owner, **lease_holder(), "expires": time.time() + lease_s},
            "attempts": [*job.get("attempts", []), attempt],
            "error": None,
        }

    job = retrying(lambda: store.update(job_id, claim), seconds=60)
    return job, (skip[0] if skip else None)


def run_job(task: Any, kind: str, job_id: str, body: Body) -> dict[str, Any]:
    """Claim, run `body` under a heartbeat, record the outcome; never raises for job errors."""
    from workers.progress import Heartbeat

    settings = WorkerSettings()
    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    store = make_job_store(settings)
    owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    try:
        job, skip = _claim(job_id, owner, task.request.id, settings.lease_s, store)
    except JobNotFound:
        log.error("job %s: no such job record; dropped", job_id)
        return {"skipped": "no record"}
    if skip:
        log.info("job %s: skipped, %s", job_id, skip)
        return {"skipped": skip}
    folder = store.job_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    with Heartbeat(store, job_id, owner, settings.lease_s) as beat:
        ctx = JobContext(settings, store, job, folder, beat.cancel, dict(job["attempts"][-1]))
        try:
            outcome = body(ctx)
        except SoftTimeLimitExceeded:
            soft, _ = settings.time_limits(kind)
            outcome = {
                "state": "failed",
                "error": f"soft time limit of {soft} s exceeded (setting "
                f"MMVAE_{kind.upper()}_SOFT_TIME_LIMIT_S); checkpoints are kept in the job folder",
            }
        except Exception as err:
            log.exception("job %s failed", job_id)
            outcome = {"state": "failed", "error": f"{type(err).__name__}: {err}"}
    outcome = settings.redact(outcome)  # what the caller reads names no server folder

    def finish(record: dict[str, Any]) -> dict[str, Any]:
        attempts = list(record.get("attempts", []))
        if attempts:
            attempts[-1] = {**attempts[-1], **ctx.attempt, "ended": now_iso()}
            attempts[-1]["outcome"] = outcome["state"]
        return {**record, **outcome, "attempts": attempts, "finished": now_iso(), "lease": None}

    retrying(lambda: store.update(job_id, finish), seconds=300)
    log.info("job %s: %s", job_id, outcome["state"])
    return {"state": outcome["state"]}


@shared_task(name="mmvae.train", bind=True)
def train(self: Any, job_id: str) -> dict[str, Any]:
    """Train a model from a job spec; resumes from the job's checkpoints when redelivered."""
    from workers.jobs_train import train_body

    return run_job(self, "train", job_id, train_body)


@shared_task(name="mmvae.augment", bind=True)
def augment(self: Any, job_id: str) -> dict[str, Any]:
    """Synthetic samples from a stored model as an .npz artifact (also stored as a dataset)."""
    from workers.jobs_data import augment_body

    return run_job(self, "augment", job_id, augment_body)


@shared_task(name="mmvae.evaluate", bind=True)
def evaluate(self: Any, job_id: str) -> dict[str, Any]:
    """Metrics report (metrics.json) and PNG figures for a stored model on a dataset."""
    from workers.jobs_data import evaluate_body

    return run_job(self, "evaluate", job_id, evaluate_body)
