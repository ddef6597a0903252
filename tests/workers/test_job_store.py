"""Job records in both backends: create, idempotency, atomic updates, filters, leases,
claiming (skips finished, cancelled and live-leased jobs) and orphan recovery."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from workers.jobs import (
    FileJobStore,
    JobStore,
    RedisJobStore,
    lease_alive,
    lease_holder,
    new_job,
)
from workers.recovery import orphaned
from workers.settings import WorkerSettings
from workers.tasks import _claim


@pytest.fixture(params=["files", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> JobStore:
    if request.param == "files":
        return FileJobStore(WorkerSettings(data_dir=tmp_path, redis_url=None))
    server = request.getfixturevalue("redis_server")
    return RedisJobStore(WorkerSettings(data_dir=tmp_path, redis_url=server.url))


def test_create_get_list_idempotency(store: JobStore) -> None:
    a, created = store.create(new_job("train", {"x": 1}, "key-1"))
    assert created and store.require(a["id"])["spec"] == {"x": 1}
    b, created = store.create(new_job("train", {"x": 2}, "key-1"))
    assert not created and b["id"] == a["id"]
    c, _ = store.create(new_job("evaluate", {}))
    assert [j["id"] for j in store.list()] == [c["id"], a["id"]]
    assert [j["id"] for j in store.list(kind="train")] == [a["id"]]
    store.set(a["id"], state="running")
    assert [j["id"] for j in store.list(state="running")] == [a["id"]]
    assert store.get("0" * 32) is None and store.ping() is None


def test_updates_are_atomic(store: JobStore) -> None:
    job, _ = store.create(new_job("train", {}))
    store.set(job["id"], count=0)

    def bump() -> None:
        for _ in range(20):
            store.update(job["id"], lambda j: {**j, "count": j["count"] + 1})

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.require(job["id"])["count"] == 80


def test_claim_skips_and_leases(store: JobStore) -> None:
    job, _ = store.create(new_job("train", {}))
    claimed, skip = _claim(job["id"], "me", "t1", 30, store)
    assert skip is None and claimed["state"] == "running" and len(claimed["attempts"]) == 1
    _, skip = _claim(job["id"], "other", "t2", 30, store)
    assert skip and "running elsewhere" in skip  # our process holds a live lease
    store.set(job["id"], state="succeeded")
    assert _claim(job["id"], "other", "t3", 30, store)[1] == "already succeeded"
    queued, _ = store.create(new_job("train", {}))
    store.set(queued["id"], cancel_requested=True)
    done, skip = _claim(queued["id"], "me", "t4", 30, store)
    assert skip and done["state"] == "cancelled"


def test_dead_or_expired_lease_is_orphaned(store: JobStore) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    job, _ = store.create(new_job("train", {}))
    lease = {"owner": "x", **lease_holder(), "pid": dead.pid, "expires": time.time() + 60}
    store.set(job["id"], state="running", lease=lease)
    assert not lease_alive(lease)
    live = {"owner": "y", **lease_holder(), "expires": time.time() + 60}
    assert lease_alive(live) and not lease_alive({**live, "expires": time.time() - 1})
    other, _ = store.create(new_job("train", {}))
    store.set(other["id"], state="running", lease=live)
    assert [j["id"] for j in orphaned(store, resend_after_s=60)] == [job["id"]]
    assert os.getpid() == live["pid"]
