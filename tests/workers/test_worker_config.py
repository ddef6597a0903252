"""Celery configuration from settings, time limits and visibility timeout rules, the
`mmvae worker` command line and the embedded worker supervisor."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from workers.celery_app import celery_config, make_celery
from workers.cli import register, worker_argv
from workers.settings import WorkerSettings
from workers.supervisor import EmbeddedWorker


def test_redis_config(tmp_path: Path) -> None:
    settings = WorkerSettings(data_dir=tmp_path, redis_url="redis://127.0.0.1:1/3")
    conf = celery_config(settings)
    assert conf["broker_url"] == conf["result_backend"] == "redis://127.0.0.1:1/3"
    assert conf["task_acks_late"] and conf["task_reject_on_worker_lost"]
    assert conf["worker_prefetch_multiplier"] == 1
    assert conf["task_routes"]["mmvae.train"] == {"queue": "gpu"}
    assert conf["task_routes"]["mmvae.augment"] == {"queue": "gpu"}
    longest = settings.train_time_limit_s
    assert conf["broker_transport_options"]["visibility_timeout"] > longest
    limits = conf["task_annotations"]["mmvae.train"]
    assert limits == {"soft_time_limit": 6 * 3600, "time_limit": longest}


def test_embedded_config_needs_no_server(tmp_path: Path) -> None:
    app = make_celery(WorkerSettings(data_dir=tmp_path, redis_url=None))
    assert app.conf.broker_url == "filesystem://"
    assert app.conf.result_backend.startswith("file://")
    assert (tmp_path / "broker" / "queue").is_dir()


def test_limits_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="visibility_timeout_s"):
        WorkerSettings(data_dir=tmp_path, visibility_timeout_s=60)
    with pytest.raises(ValidationError, match="train_soft_time_limit_s"):
        WorkerSettings(data_dir=tmp_path, train_soft_time_limit_s=10, train_time_limit_s=5)
    short = WorkerSettings(
        data_dir=tmp_path, visibility_timeout_s=8, allow_short_visibility_timeout=True
    )
    assert short.effective_visibility_timeout == 8


def test_worker_command_line() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["worker", "--queues", "gpu", "--pool", "solo"])
    argv = worker_argv(args, embedded=True)
    assert "--queues=gpu" in argv and "--pool=solo" in argv and "--concurrency=1" in argv
    assert "--without-mingle" in argv
    assert "--without-mingle" not in worker_argv(args, embedded=False)


def test_supervisor_restarts_a_dead_worker() -> None:
    worker = EmbeddedWorker(["sleep", "30"], backoff_s=0.1, poll_s=0.05).start()
    try:
        first = worker.proc
        assert first is not None
        first.kill()
        deadline = time.monotonic() + 5
        while worker.proc is first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert worker.restarts == 1 and worker.proc is not first
        assert worker.proc.poll() is None
    finally:
        worker.stop(timeout=1)
    assert worker.proc.poll() is not None


def test_serve_starts_a_worker_only_in_embedded_mode(tmp_path: Path, monkeypatch) -> None:
    from service.cli import start_embedded_worker
    from service.settings import Settings

    for name in ("MMVAE_REDIS_URL", "REDIS_URL", "MMVAE_EMBEDDED_WORKER"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path, preload=[])
    assert start_embedded_worker(settings, no_worker=True) is None
    monkeypatch.setenv("MMVAE_EMBEDDED_WORKER", "false")
    assert start_embedded_worker(settings, no_worker=False) is None
    monkeypatch.delenv("MMVAE_EMBEDDED_WORKER")
    monkeypatch.setenv("MMVAE_REDIS_URL", "redis://127.0.0.1:1/0")
    assert start_embedded_worker(settings, no_worker=False) is None
    monkeypatch.delenv("MMVAE_REDIS_URL")
    worker = start_embedded_worker(settings, no_worker=False)
    assert worker is not None
    try:
        assert worker.proc is not None and worker.proc.poll() is None
        assert worker.env is not None and worker.env["MMVAE_DATA_DIR"] == str(tmp_path)
    finally:
        worker.stop(timeout=2)
    assert worker.proc.poll() is not None
