"""A failed job's record names `<data>`/`<store>`, never the deployment's absolute folders."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from workers.jobs import make_job_store, new_job
from workers.settings import WorkerSettings
from workers.tasks import run_job


def test_a_failed_job_records_its_error_without_server_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    for name in ("MMVAE_REDIS_URL", "REDIS_URL", "MMVAE_STORE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMVAE_DATA_DIR", str(data))
    settings = WorkerSettings()
    store = make_job_store(settings)
    job, _ = store.create(new_job("evaluate", {"type": "evaluate", "model": "m"}))
    missing = settings.datasets_dir / "abc.npz"

    def body(ctx):
        raise FileNotFoundError(f"no such file: {missing} (store {settings.resolved_store_dir})")

    run_job(SimpleNamespace(request=SimpleNamespace(id="task-1")), "evaluate", job["id"], body)
    record = store.get(job["id"])
    assert record["state"] == "failed"
    assert record["error"] == (
        "FileNotFoundError: no such file: <data>/datasets/abc.npz (store <store>)"
    )
    assert str(data.resolve()) not in str(record.get("result"))
