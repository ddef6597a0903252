"""Re-send jobs whose worker died: the filesystem broker cannot redeliver after `kill -9`.

A worker scans the job records when it starts and then every `recovery_interval_s`: a job
recorded as running whose lease has expired (or whose process on this host is gone), or a
queued job never handed to the broker, is sent again. Duplicates are harmless: a task skips a
finished job and one leased by a live worker. In Redis mode this complements the visibility
timeout (which also redelivers, later).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from celery import signals

from workers.celery_app import QUEUES, task_name
from workers.jobs import JobStore, lease_alive, make_job_store
from workers.settings import WorkerSettings

log = logging.getLogger("workers.recovery")
UNSENT_AFTER_S = 60.0


def orphaned(store: JobStore, resend_after_s: float) -> list[dict[str, Any]]:
    """Jobs to send again: running without a live lease, or queued and never sent."""
    now = time.time()
    found = []
    for job in store.list(limit=100_000):
        if job.get("resent_ts") and now - job["resent_ts"] < resend_after_s:
            continue
        if (job["state"] == "running" and not lease_alive(job.get("lease"), now)) or (
            job["state"] == "queued"
            and not job.get("sent")
            and now - job["created_ts"] > UNSENT_AFTER_S
        ):
            found.append(job)
    return found


def recover(store: JobStore, app: Any, resend_after_s: float) -> list[str]:
    """Send orphaned jobs to their queues again; returns their ids."""
    sent = []
    for job in orphaned(store, resend_after_s):
        app.send_task(task_name(job["type"]), args=[job["id"]], queue=QUEUES[job["type"]])
        store.set(job["id"], resent_ts=time.time(), sent=True)
        log.warning("job %s (%s): re-sent, its worker is gone", job["id"], job["state"])
        sent.append(job["id"])
    return sent


def start_recovery_thread(app: Any, settings: WorkerSettings) -> threading.Thread:
    """Recover now, then every `recovery_interval_s`, in a daemon thread of the worker."""
    store = make_job_store(settings)
    resend_after = max(10 * settings.recovery_interval_s, 2 * settings.lease_s)

    def loop() -> None:
        while True:
            try:
                recover(store, app, resend_after)
            except Exception as err:  # broker or store restarting: next round
                log.warning("recovery scan failed: %s", err)
            time.sleep(settings.recovery_interval_s)

    thread = threading.Thread(target=loop, name="mmvae-recovery", daemon=True)
    thread.start()
    return thread


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    app = getattr(sender, "app", None)
    if app is not None:
        start_recovery_thread(app, WorkerSettings())
