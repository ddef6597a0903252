"""Job and dataset routes without a worker: idempotency, auth, cancel while queued, artifacts,
uploads (validated, size-limited, by content hash), readiness."""

from __future__ import annotations

import io

import numpy as np

from service.job_schemas import DatasetSummary, JobList, JobRecord
from tests.workers.conftest import AUTH, submit, train_spec


def npz_bytes(n: int = 20, bad: bool = False) -> bytes:
    rng = np.random.default_rng(0)
    arrays = {"image": rng.random((n, 1, 8, 8), dtype=np.float32), "vec": rng.normal(size=(n, 3))}
    if bad:
        arrays["mask__nothing"] = np.ones(n, dtype=bool)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_submit_idempotent_list_and_cancel_queued(make_env) -> None:
    env = make_env()
    with env.client() as client:
        assert client.post("/v1/jobs", json=train_spec()).status_code == 401
        first = submit(client, train_spec(), **{"Idempotency-Key": "abc"})
        again = client.post(
            "/v1/jobs", json=train_spec(), headers={**AUTH, "Idempotency-Key": "abc"}
        )
        assert again.status_code == 202 and again.json()["id"] == first["id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        other = submit(client, train_spec())
        JobRecord.model_validate(first)  # every field the API returns is in its schema
        listed = client.get("/v1/jobs?state=queued", headers=AUTH).json()
        jobs = JobList.model_validate(listed).model_dump()["jobs"]
        assert [j["id"] for j in jobs] == [other["id"], first["id"]]
        r = client.post(f"/v1/jobs/{first['id']}/cancel", headers=AUTH)
        assert r.status_code == 202 and r.json()["state"] == "cancelled"
        JobRecord.model_validate(r.json())
        JobRecord.model_validate(client.get(f"/v1/jobs/{first['id']}", headers=AUTH).json())
        assert (
            client.get("/v1/jobs?state=cancelled", headers=AUTH).json()["jobs"][0]["id"]
            == (first["id"])
        )
        assert client.get("/v1/jobs/" + "f" * 32, headers=AUTH).status_code == 404
        assert client.get("/v1/jobs/not-an-id", headers=AUTH).status_code == 422
        for name in ("job.json", "../job.json", "train/../job.json", "%2e%2e/x"):
            r = client.get(f"/v1/jobs/{first['id']}/artifacts/{name}", headers=AUTH)
            assert r.status_code == 404, name
        ready = client.get("/readyz").json()["checks"]
        assert ready["broker"] == "ok"
    queued = list((env.data / "broker" / "queue").iterdir())
    assert len(queued) == 2  # two jobs sent (the idempotent retry was not)


def test_dataset_upload_and_use(make_env) -> None:
    env = make_env(MMVAE_MAX_DATASET_BYTES="20000")
    with env.client() as client:
        content = npz_bytes()
        headers = {**AUTH, "Content-Type": "application/octet-stream"}
        r = client.post("/v1/datasets", content=content, headers=headers)
        assert r.status_code == 201, r.text
        info = r.json()
        DatasetSummary.model_validate(info)
        assert info["n"] == 20 and {m["name"] for m in info["modalities"]} == {"image", "vec"}
        files = {"file": ("d.npz", content, "application/octet-stream")}
        r = client.post("/v1/datasets", files=files, headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] == info["id"]
        got = client.get(f"/v1/datasets/dataset:{info['id']}", headers=AUTH).json()
        assert got["modalities"] == info["modalities"]
        builtin = client.get("/v1/datasets/digits", headers=AUTH).json()
        assert DatasetSummary.model_validate(builtin).modalities
        assert client.get("/v1/datasets/" + "0" * 64, headers=AUTH).status_code == 404
        r = client.post("/v1/datasets", content=npz_bytes(bad=True), headers=headers)
        assert r.status_code == 422 and "mask__nothing" in r.json()["error"]["message"]
        r = client.post("/v1/datasets", content=b"not a zip", headers=headers)
        assert r.status_code == 422
        r = client.post("/v1/datasets", content=npz_bytes(n=200), headers=headers)
        assert r.status_code == 413
        job = submit(client, train_spec(dataset=info["reference"]))
        assert job["state"] == "queued"
        spec = train_spec(dataset=info["id"])
        spec["model"] = {**spec["model"], "modalities": [{"name": "label", "shape": [10]}]}
        r = client.post("/v1/jobs", json=spec, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"]["field"] == "model.modalities[0]"
    stored = list((env.data / "datasets").glob("*.npz"))
    assert [p.stem for p in stored] == [info["id"]]


def test_uploads_count_against_the_datasets_quota_and_leave_no_partial_files(make_env) -> None:
    first, second = npz_bytes(n=20), npz_bytes(n=30)
    env = make_env(MMVAE_DATASETS_QUOTA_BYTES=str(len(first) + len(second) // 2))
    headers = {**AUTH, "Content-Type": "application/octet-stream"}
    with env.client() as client:
        assert client.post("/v1/datasets", content=first, headers=headers).status_code == 201
        r = client.post("/v1/datasets", content=second, headers=headers)
        assert r.status_code == 413, r.text
        error = r.json()["error"]
        assert (
            error["code"] == "quota_exceeded" and "MMVAE_DATASETS_QUOTA_BYTES" in error["message"]
        )
        assert client.post("/v1/datasets", content=b"not a zip", headers=headers).status_code == 422
    left = sorted(p.name for p in (env.data / "datasets").iterdir() if p.suffix != ".json")
    assert len(left) == 1 and left[0].endswith(".npz")  # the first upload only, no temporaries
