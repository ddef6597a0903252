"""Fixtures for job tests: real workers in subprocesses, our own redis-server, an API client.

Workers run `python -m workers` (prefork, one process, torch on one thread) in their own
process group, killed at teardown; Redis tests use a private redis-server on a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings
from workers.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
KEY = "jobs-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
TERMINAL = {"succeeded", "failed", "cancelled"}
FAST = {  # quick delivery, leases and recovery for tests
    "MMVAE_LEASE_S": "6",
    "MMVAE_PROGRESS_INTERVAL_S": "0.2",
    "MMVAE_RECOVERY_INTERVAL_S": "2",
    "MMVAE_POLLING_INTERVAL_S": "0.2",
    "MMVAE_TORCH_THREADS": "1",
    "MMVAE_MAX_EPOCHS": "200",
}
TINY_MODEL = {
    "model_type": "mvae",
    "latent_dim": 4,
    "encoder": {"kind": "mlp", "hidden": [32]},
    "decoder": {"kind": "mlp", "hidden": [32]},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A private redis-server (append-only file, so a restart keeps queues and records)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.folder)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:  # pragma: no cover - the binary is required here
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Worker:
    """`python -m workers` in its own process group; `kill()` sends SIGKILL to all of it."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        out = open(self.log, "ab")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "workers", "--loglevel", "info"],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (warm shutdown), then SIGKILL for the whole group after a few seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with _suppress():
                os.killpg(self.proc.pid, signal.SIGTERM)
            with _suppress():
                self.proc.wait(2)
        with _suppress():
            os.killpg(self.proc.pid, signal.SIGKILL)
        with _suppress():
            self.proc.wait(5)


def _suppress() -> contextlib.suppress:
    return contextlib.suppress(ProcessLookupError, PermissionError, subprocess.TimeoutExpired)


class JobEnv:
    """One data directory, optional Redis, workers and an API client sharing its settings."""

    def __init__(self, tmp: Path, redis_url: str | None, extra: dict[str, str]) -> None:
        self.tmp, self.data = tmp, tmp / "data"
        self.vars = {"MMVAE_DATA_DIR": str(self.data), **FAST, **extra}
        if redis_url:
            self.vars["MMVAE_REDIS_URL"] = redis_url
            self.vars.setdefault("MMVAE_VISIBILITY_TIMEOUT_S", "8")
            self.vars["MMVAE_ALLOW_SHORT_VISIBILITY_TIMEOUT"] = "true"
        self.workers: list[Worker] = []

    def worker_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MMVAE_")}
        env.pop("REDIS_URL", None)
        env.update(self.vars, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONPATH=str(ROOT))
        return env

    def job_settings(self) -> WorkerSettings:
        values = {k[len("MMVAE_") :].lower(): v for k, v in self.vars.items()}
        values.setdefault("redis_url", None)
        return WorkerSettings(**values)

    def start_worker(self) -> Worker:
        worker = Worker(self.worker_env(), self.tmp / f"worker{len(self.workers)}.log")
        self.workers.append(worker.start())
        return worker

    def logs(self) -> str:
        return "\n".join(w.log.read_text(errors="replace")[-4000:] for w in self.workers)

    @contextmanager
    def client(self) -> Iterator[TestClient]:
        settings = Settings(
            preload=[], data_dir=self.data, api_keys=[KEY], log_json=False, warmup=False
        )
        app = create_app(settings, job_settings=self.job_settings())
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client

    def close(self) -> None:
        for worker in self.workers:
            worker.stop()


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Callable[..., JobEnv]]:
    made: list[JobEnv] = []

    def factory(redis_url: str | None = None, **extra: str) -> JobEnv:
        env = JobEnv(tmp_path, redis_url, extra)
        made.append(env)
        return env

    yield factory
    for env in made:
        env.close()


def submit(client: TestClient, spec: dict[str, Any], **headers: str) -> dict[str, Any]:
    r = client.post("/v1/jobs", json=spec, headers={**AUTH, **headers})
    assert r.status_code == 202, r.text
    return r.json()


def wait_job(
    client: TestClient,
    job_id: str,
    until: Callable[[dict[str, Any]], bool] = lambda j: j["state"] in TERMINAL,
    timeout: float = 120,
    env: JobEnv | None = None,
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}", headers=AUTH)
        assert r.status_code == 200, r.text
        job = r.json()
        if until(job):
            return job
        time.sleep(0.2)
    logs = env.logs() if env is not None else ""
    raise AssertionError(f"job {job_id} not done in {timeout} s: {job}\n{logs}")


def train_spec(epochs: int = 2, batch_size: int = 128, **extra: Any) -> dict[str, Any]:
    return {
        "type": "train",
        "model": TINY_MODEL,
        "dataset": "digits",
        "trainer": {"epochs": epochs, "batch_size": batch_size, "device": "cpu"},
        **extra,
    }


def has_stepped(job: dict[str, Any]) -> bool:
    """`wait_job` condition: training has taken its first step."""
    return job["progress"].get("step", 0) > 0
