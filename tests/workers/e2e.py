"""The end-to-end scenario both broker modes run: train, augment and evaluate over HTTP."""

from __future__ import annotations

import io
import json

import numpy as np

from tests.workers.conftest import AUTH, JobEnv, submit, train_spec, wait_job


def train_augment_evaluate(env: JobEnv) -> None:
    env.start_worker()
    with env.client() as client:
        job = submit(client, train_spec(epochs=2, name="e2e"))
        assert job["state"] == "queued"
        with client.stream("GET", f"/v1/jobs/{job['id']}/events", headers=AUTH) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            events = [json.loads(line[6:]) for line in r.iter_lines() if line.startswith("data: ")]
        assert events[-1]["state"] == "succeeded", env.logs()
        assert any(e["progress"].get("step") for e in events)
        done = wait_job(client, job["id"], env=env)
        assert done["progress"]["epoch"] == 2 and done["progress"]["total"] > 0
        model = done["result"]["model"]
        assert (model["name"], model["version"]) == ("e2e", "1")
        names = [a["name"] for a in done["artifacts"]]
        assert "train/metrics.jsonl" in names and "train/model/config.json" in names
        r = client.get(f"/v1/jobs/{job['id']}/artifacts/train/metrics.jsonl", headers=AUTH)
        assert r.status_code == 200 and len(r.text.splitlines()) == 2

        aug = submit(client, {"type": "augment", "model": "e2e", "n": 40, "seed": 1})
        aug = wait_job(client, aug["id"], env=env)
        assert aug["state"] == "succeeded", aug
        assert aug["progress"] == {**aug["progress"], "step": 40, "total": 40, "fraction": 1,
                                   "phase": "sampling"}  # fmt: skip
        r = client.get(f"/v1/jobs/{aug['id']}/artifacts/synthetic.npz", headers=AUTH)
        arrays = np.load(io.BytesIO(r.content))
        assert arrays["image"].shape == (40, 1, 8, 8)
        dataset = aug["result"]["dataset"]
        info = client.get(f"/v1/datasets/{dataset}", headers=AUTH).json()
        assert info["n"] == 40

        spec = {"type": "evaluate", "model": "e2e@1", "dataset": dataset, "split": "all"}
        ev = submit(client, {**spec, "metrics": ["likelihood", "reconstruction"], "k": 5})
        ev = wait_job(client, ev["id"], env=env)
        assert ev["state"] == "succeeded", ev
        assert ev["progress"]["fraction"] == 1 and ev["progress"]["total"] == 3  # + figures
        assert "likelihood" in ev["result"]["report"]["metrics"]
        files = [a["name"] for a in ev["artifacts"]]
        assert "evaluation/metrics.json" in files
        pngs = [f for f in files if f.endswith(".png")]
        assert pngs
        r = client.get(f"/v1/jobs/{ev['id']}/artifacts/{pngs[0]}", headers=AUTH)
        assert r.content[:8] == b"\x89PNG\r\n\x1a\n"
        listed = client.get("/v1/jobs?state=succeeded&type=train", headers=AUTH).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
