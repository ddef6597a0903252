"""Job records: state, spec, timestamps, progress, error, artifacts, cancel flag and lease.

Two backends with one interface: JSON files under `<data_dir>/jobs/<id>/job.json` (embedded
mode; atomic writes, `flock` around read-modify-write) and Redis (one JSON value per job, a
sorted set as index, WATCH/MULTI for read-modify-write). Records outlive API and worker restarts.
The job's folder `<data_dir>/jobs/<id>/` holds its checkpoints and artifacts in both modes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workers.settings import WorkerSettings

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
JOB_FILE = "job.json"
Job = dict[str, Any]
Mutator = Callable[[Job], "Job | None"]


class JobNotFound(KeyError):
    """No job with that id."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_job(kind: str, spec: dict[str, Any], idempotency_key: str | None = None) -> Job:
    """A fresh queued record for a validated spec."""
    return {
        "id": uuid.uuid4().hex,
        "type": kind,
        "state": "queued",
        "spec": spec,
        "created": now_iso(),
        "created_ts": time.time(),
        "started": None,
        "finished": None,
        "progress": {},
        "error": None,
        "artifacts": [],
        "result": {},
        "cancel_requested": False,
        "idempotency_key": idempotency_key,
        "attempts": [],
        "lease": None,
        "sent": False,
    }


def lease_holder() -> dict[str, Any]:
    """Who this process is, for leases: host and pid (a dead pid on this host frees the lease)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def lease_alive(lease: dict[str, Any] | None, now: float | None = None) -> bool:
    """True while a lease is unexpired and, on this host, its process still exists."""
    if not lease:
        return False
    if (now or time.time()) > lease.get("expires", 0):
        return False
    if lease.get("host") == socket.gethostname():
        try:
            os.kill(int(lease["pid"]), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, KeyError, ValueError):
            return True
    return True


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class JobStore(ABC):
    """Create, read, list and atomically update job records."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings

    def job_dir(self, job_id: str) -> Path:
        """The job's folder (checkpoints, artifacts); a shared volume in Redis deployments."""
        return self.settings.jobs_dir / job_id

    @abstractmethod
    def create(self, job: Job) -> tuple[Job, bool]:
        """Store `job`; with an idempotency key already used, return that job and False."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def ids(self) -> list[str]:
        """Every job id, oldest first."""

    @abstractmethod
    def update(self, job_id: str, mutate: Mutator) -> Job:
        """Apply `mutate` to the current record atomically; it returns the new record (or None
        to leave it unchanged). Returns the record as stored afterwards."""

    @abstractmethod
    def ping(self) -> str | None:
        """None when the backend is reachable, else the problem (readiness)."""

    def require(self, job_id: str) -> Job:
        job = self.get(job_id)
        if job is None:
            raise JobNotFound(job_id)
        return job

    def list(self, state: str | None = None, kind: str | None = None, limit: int = 100) -> list:
        """Newest first, filtered by state and type."""
        out = []
        for job_id in reversed(self.ids()):
            job = self.get(job_id)
            if job is None or (state and job["state"] != state) or (kind and job["type"] != kind):
                continue
            out.append(job)
            if len(out) >= limit:
                break
        return out

    def set(self, job_id: str, **fields: Any) -> Job:
        """Update some fields."""
        return self.update(job_id, lambda job: {**job, **fields})


class FileJobStore(JobStore):
    """Embedded mode: one JSON file per job, written atomically (temp file + rename)."""

    def _file(self, job_id: str) -> Path:
        return self.job_dir(job_id) / JOB_FILE

    @contextlib.contextmanager
    def _locked(self, job_id: str) -> Iterator[None]:
        folder = self.job_dir(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, job: Job) -> None:
        path = self._file(job["id"])
        tmp = path.with_name(f".{JOB_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(json.dumps(job, indent=1))
        os.replace(tmp, path)

    def create(self, job: Job) -> tuple[Job, bool]:
        with self._locked(job["id"]):
            self._write(job)
        key = job.get("idempotency_key")
        if not key:
            return job, True
        keys = self.settings.jobs_dir / ".idempotency"
        keys.mkdir(parents=True, exist_ok=True)
        marker = keys / _key_hash(key)
        try:
            fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            shutil.rmtree(self.job_dir(job["id"]), ignore_errors=True)
            for _ in range(50):  # the winner writes its id just after creating the marker
                existing = marker.read_text().strip()
                if existing and self.get(existing) is not None:
                    return self.require(existing), False
                time.sleep(0.02)
            raise RuntimeError(f"idempotency key {key!r}: its job record is missing") from None
        with os.fdopen(fd, "w") as f:
            f.write(job["id"])
        return job, True

    def get(self, job_id: str) -> Job | None:
        try:
            return json.loads(self._file(job_id).read_text())
        except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
            return None

    def ids(self) -> list[str]:
        root = self.settings.jobs_dir
        if not root.is_dir():
            return []
        found = []
        for folder in root.iterdir():
            if not folder.name.startswith(".") and (folder / JOB_FILE).is_file():
                found.append((folder.stat().st_ctime, folder.name))
        jobs = {job_id: self.get(job_id) for _, job_id in found}
        return sorted((i for i, j in jobs.items() if j), key=lambda i: (jobs[i]["created_ts"], i))

    def update(self, job_id: str, mutate: Mutator) -> Job:
        if not self._file(job_id).is_file():
            raise JobNotFound(job_id)
        with self._locked(job_id):
            job = self.require(job_id)
            new = mutate(dict(job))
            if new is None:
                return job
            new["updated"] = now_iso()
            self._write(new)
            return new

    def ping(self) -> str | None:
        root = self.settings.jobs_dir
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            return f"jobs {root}: {err}"
        return None if os.access(root, os.W_OK) else f"jobs {root}: not writable"


class RedisJobStore(JobStore):
    """Redis mode: `mmvae:job:<id>` JSON values, `mmvae:jobs` index, `mmvae:idem:<sha>` keys."""

    PREFIX = "mmvae:"

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(settings)
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        self.redis = redis.Redis.from_url(
            settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=5,
            health_check_interval=10,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.1), 3),
        )
        self.watch_error = redis.WatchError

    def _key(self, job_id: str) -> str:
        return f"{self.PREFIX}job:{job_id}"

    def create(self, job: Job) -> tuple[Job, bool]:
        key = job.get("idempotency_key")
        if key:
            idem = f"{self.PREFIX}idem:{_key_hash(key)}"
            if not self.redis.set(idem, job["id"], nx=True):
                existing = self.redis.get(idem).decode()
                for _ in range(50):
                    found = self.get(existing)
                    if found is not None:
                        return found, False
                    time.sleep(0.02)
                raise RuntimeError(f"idempotency key {key!r}: its job record is missing")
        pipe = self.redis.pipeline()
        pipe.set(self._key(job["id"]), json.dumps(job))
        pipe.zadd(f"{self.PREFIX}jobs", {job["id"]: job["created_ts"]})
        pipe.execute()
        return job, True

    def get(self, job_id: str) -> Job | None:
        raw = self.redis.get(self._key(job_id))
        return None if raw is None else json.loads(raw)

    def ids(self) -> list[str]:
        return [i.decode() for i in self.redis.zrange(f"{self.PREFIX}jobs", 0, -1)]

    def update(self, job_id: str, mutate: Mutator) -> Job:
        key = self._key(job_id)
        with self.redis.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    if raw is None:
                        raise JobNotFound(job_id)
                    job = json.loads(raw)
                    new = mutate(dict(job))
                    if new is None:
                        pipe.unwatch()
                        return job
                    new["updated"] = now_iso()
                    pipe.multi()
                    pipe.set(key, json.dumps(new))
                    pipe.execute()
                    return new
                except self.watch_error:
                    continue

    def ping(self) -> str | None:
        try:
            self.redis.ping()
        except Exception as err:
            return f"redis: {type(err).__name__}: {err}"
        return None


def artifact_files(path: Path, base: Path) -> list[str]:
    """Relative paths (to the job folder `base`) of the regular files at or under `path`."""
    if path.is_file():
        return [str(path.relative_to(base))]
    if not path.is_dir():
        return []
    return sorted(str(p.relative_to(base)) for p in path.rglob("*") if p.is_file())


def make_job_store(settings: WorkerSettings) -> JobStore:
    """Redis records when a Redis URL is set, else files under the data directory."""
    return RedisJobStore(settings) if settings.redis_url else FileJobStore(settings)


def retrying(fn: Callable[[], Any], seconds: float = 120.0, pause: float = 0.5) -> Any:
    """Call `fn` until it succeeds or `seconds` pass (the job store may be restarting)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except JobNotFound:
            raise
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
