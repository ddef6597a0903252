"""Cancelling a running training job: the loop stops at its next step; nothing is published."""

from __future__ import annotations

import time

import pytest

from core.store import ModelStore
from tests.workers.conftest import AUTH, has_stepped, submit, train_spec, wait_job


@pytest.mark.slow
def test_cancel_running_training(make_env) -> None:
    env = make_env()
    env.start_worker()
    with env.client() as client:
        spec = train_spec(epochs=200, batch_size=16, name="cancelled")
        job = submit(client, spec)
        wait_job(client, job["id"], has_stepped, 60, env)
        asked = time.monotonic()
        r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
        assert r.status_code == 202 and r.json()["cancel_requested"]
        done = wait_job(client, job["id"], timeout=30, env=env)
        assert done["state"] == "cancelled", done
        assert time.monotonic() - asked < 5
        assert done["result"]["epochs_run"] < 200
        assert ModelStore(env.data / "models").names() == []
        r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
        assert r.status_code == 202 and r.json()["state"] == "cancelled"
