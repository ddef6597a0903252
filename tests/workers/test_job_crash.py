"""Crash safety: SIGKILL the worker mid-training; a new worker resumes from the checkpoint and
the model is published exactly once (Redis: redelivery; embedded: startup recovery)."""

from __future__ import annotations

import pytest

from core.store import ModelStore
from tests.workers.conftest import AUTH, JobEnv, submit, train_spec, wait_job

EPOCHS = 12


def kill_and_resume(env: JobEnv) -> None:
    worker = env.start_worker()
    with env.client() as client:
        spec = train_spec(epochs=EPOCHS, batch_size=64, name="crash")
        job = submit(client, spec)
        running = wait_job(
            client, job["id"], lambda j: j["progress"].get("completed_epochs", 0) >= 3, 90, env
        )
        worker.kill()
        completed = running["progress"]["completed_epochs"]
        assert completed < EPOCHS, "finished before the kill; make the job longer"
        env.start_worker()
        done = wait_job(client, job["id"], timeout=120, env=env)
        assert done["state"] == "succeeded", (done, env.logs())
        resumed = done["result"]["resumed_from_epoch"]
        assert resumed is not None and resumed >= completed - 1, done
        assert EPOCHS - resumed < EPOCHS  # fewer epochs re-run than a fresh start
        assert done["attempts"] >= 2
        assert done["progress"]["epoch"] == EPOCHS
        store = ModelStore(env.data / "models")
        assert store.names() == ["crash"] and store.versions("crash") == ["1"]
        log = client.get(f"/v1/jobs/{job['id']}/artifacts/train/metrics.jsonl", headers=AUTH)
        assert len(log.text.splitlines()) == EPOCHS


@pytest.mark.slow
def test_sigkill_resumes_redis(make_env, redis_server) -> None:
    kill_and_resume(make_env(redis_server.url))


@pytest.mark.slow
def test_sigkill_resumes_embedded(make_env) -> None:
    kill_and_resume(make_env())
