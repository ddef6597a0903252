"""A training job on several processes (`resources`): the worker launches torchrun, reports
rank 0's progress, publishes the model, and a cancel reaches every process."""

from __future__ import annotations

import json

import pytest

from core.store import ModelStore
from tests.workers.conftest import AUTH, has_stepped, submit, train_spec, wait_job

pytestmark = pytest.mark.slow


def test_a_job_trains_on_two_processes_and_publishes(make_env) -> None:
    env = make_env()
    env.start_worker()
    with env.client() as client:
        spec = train_spec(epochs=3, batch_size=64, resources={"processes": 2}, name="pair")
        spec["trainer"]["trackers"] = [{"kind": "tensorboard"}]  # opened by rank 0 alone
        done = wait_job(client, submit(client, spec)["id"], env=env)
        assert done["state"] == "succeeded", (done.get("error"), env.logs())
        result = done["result"]
        assert result["world_size"] == 2 and result["epochs_run"] == 3
        assert result["global_step"] == 3 * 23  # 1437 digits in global batches of 64
        assert result["model"]["name"] == "pair"
        assert done["progress"]["completed_epochs"] == 3 and done["progress"]["fraction"] == 1
        where = f"<data>/jobs/{done['id']}/train/tensorboard"
        assert result["trackers"] == [{"kind": "tensorboard", "log_dir": where}]
    assert ModelStore(env.data / "models").names() == ["pair"]
    folder = env.data / "jobs" / done["id"] / "train"
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2, 3]  # rank 0 alone writes
    assert len(list((folder / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_a_cancel_stops_every_process(make_env) -> None:
    env = make_env()
    env.start_worker()
    with env.client() as client:
        spec = train_spec(epochs=150, batch_size=16, resources={"processes": 2})
        job = submit(client, spec)
        wait_job(client, job["id"], until=has_stepped, env=env)
        assert client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH).status_code == 202
        done = wait_job(client, job["id"], env=env)
        assert done["state"] == "cancelled", (done.get("error"), env.logs())
        assert done["result"]["epochs_run"] < 150
