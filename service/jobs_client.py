"""Submitting jobs from the API: validate the spec, record the job, send the task by name.

The API process imports only light worker modules (settings, specs, job records, the Celery
app config); task code runs in workers. A broker that cannot be reached marks the job failed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from workers.celery_app import QUEUES, make_celery, task_name
from workers.jobs import Job, JobStore, make_job_store, new_job, now_iso
from workers.settings import WorkerSettings
from workers.specs import SpecError, validate_spec

log = logging.getLogger("service.jobs")


class BrokerUnavailable(RuntimeError):
    """The job was recorded but could not be queued."""


class JobsClient:
    """The API's handle on jobs: a job store and a Celery app used only to send by name."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self.store: JobStore = make_job_store(settings)
        self._celery: Any = None

    @property
    def celery(self) -> Any:
        if self._celery is None:
            self._celery = make_celery(self.settings)
        return self._celery

    def submit(self, raw: Any, idempotency_key: str | None = None) -> tuple[Job, bool]:
        """Validate (SpecError → 422), record and queue; (job, created). A retried key returns
        the first job without queueing again."""
        spec = validate_spec(raw, self.settings)
        body = spec.model_dump(mode="json")
        job, created = self.store.create(new_job(spec.type, body, idempotency_key))
        if not created:
            if job["spec"] != body:
                raise SpecError(
                    "Idempotency-Key",
                    f"already used for job {job['id']} with a different spec; use a new key "
                    "for a different job",
                    "conflict",
                )
            return job, False
        try:
            self.celery.send_task(
                task_name(spec.type), args=[job["id"]], queue=QUEUES[spec.type], retry=False
            )
        except Exception as err:
            log.error("job %s: could not be queued: %s", job["id"], err)
            message = f"broker unavailable, job not queued: {type(err).__name__}: {err}"
            self.store.set(job["id"], state="failed", error=message, finished=now_iso())
            raise BrokerUnavailable(message) from err
        return self.store.set(job["id"], sent=True), True

    def cancel(self, job_id: str) -> Job:
        """Queued: cancelled now (the worker will skip it). Running: flag it; the training loop
        stops at its next step and the worker records `cancelled`."""

        def mark(job: Job) -> Job | None:
            if job["state"] in ("succeeded", "failed", "cancelled"):
                return None
            job = {**job, "cancel_requested": True}
            if job["state"] == "queued":
                job.update(state="cancelled", finished=now_iso())
            return job

        return self.store.update(job_id, mark)

    def broker_check(self) -> str | None:
        """Readiness: Redis answers, or the filesystem broker folders are writable."""
        if self.settings.redis_url:
            return self.store.ping()
        import os

        root = self.settings.broker_dir
        for sub in ("queue", "control"):
            folder = root / sub
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                return f"broker {folder}: {err}"
            if not os.access(folder, os.W_OK):
                return f"broker {folder}: not writable"
        return self.store.ping()


def public(job: Job, base: str = "/v1/jobs") -> dict[str, Any]:
    """The record as the API shows it: no lease internals, artifact links, ETA."""
    links = [
        {"name": name, "url": f"{base}/{job['id']}/artifacts/{name}"}
        for name in job.get("artifacts", [])
    ]
    progress = dict(job.get("progress") or {})
    return {
        "id": job["id"],
        "type": job["type"],
        "state": job["state"],
        "spec": job["spec"],
        "created": job["created"],
        "started": job.get("started"),
        "finished": job.get("finished"),
        "updated": job.get("updated"),
        "progress": progress,
        "error": job.get("error"),
        "result": job.get("result") or {},
        "artifacts": links,
        "cancel_requested": bool(job.get("cancel_requested")),
        "attempts": len(job.get("attempts") or []),
        "links": {"self": f"{base}/{job['id']}", "events": f"{base}/{job['id']}/events"},
        "age_s": round(time.time() - job["created_ts"], 3),
    }
