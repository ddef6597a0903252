"""Restarting Redis (broker and job records) during a training job: the job still completes."""

from __future__ import annotations

import time

import pytest

from core.store import ModelStore
from tests.workers.conftest import has_stepped, submit, train_spec, wait_job


@pytest.mark.slow
def test_redis_restart_during_job(make_env, redis_server) -> None:
    env = make_env(redis_server.url)
    env.start_worker()
    with env.client() as client:
        spec = train_spec(epochs=10, batch_size=64, name="restart")
        job = submit(client, spec)
        wait_job(client, job["id"], has_stepped, 60, env)
        redis_server.stop()
        time.sleep(2)
        redis_server.start()
        done = wait_job(client, job["id"], timeout=150, env=env)
        assert done["state"] == "succeeded", (done, env.logs())
        assert done["progress"]["epoch"] == 10
        assert ModelStore(env.data / "models").versions("restart") == ["1"]
        # the worker still consumes after the restart: a second job runs too
        again = submit(client, train_spec(epochs=1, name="after"))
        assert wait_job(client, again["id"], timeout=60, env=env)["state"] == "succeeded"
