"""`EmbeddedWorker`: one worker subprocess that `mmvae serve` starts and restarts if it dies.

Used only in embedded mode (no Redis), so the README's single command runs API + worker.
The worker runs in its own process group; `stop()` ends the whole group.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger("workers.supervisor")
PARENT_ENV = "MMVAE_EMBEDDED_PARENT_PID"  # the worker stops itself when this process is gone
DEFAULT_COMMAND = (sys.executable, "-m", "workers", "--queues", "gpu,cpu", "--concurrency", "1")


class EmbeddedWorker:
    """Start `command`, restart it (after `backoff_s`) whenever it exits, until `stop()`."""

    def __init__(
        self,
        command: Sequence[str] = DEFAULT_COMMAND,
        env: dict[str, str] | None = None,
        backoff_s: float = 2.0,
        poll_s: float = 0.5,
    ) -> None:
        self.command, self.env = list(command), env
        self.backoff_s, self.poll_s = backoff_s, poll_s
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="embedded-worker", daemon=True)

    def start(self) -> EmbeddedWorker:
        self._spawn()
        self._thread.start()
        return self

    def _spawn(self) -> None:
        env = {**(self.env if self.env is not None else os.environ), PARENT_ENV: str(os.getpid())}
        self.proc = subprocess.Popen(self.command, env=env, start_new_session=True)
        log.info("embedded worker started (pid %s)", self.proc.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            if self.proc is not None and self.proc.poll() is not None:
                log.warning("embedded worker exited (%s); restarting", self.proc.returncode)
                if self._stop.wait(self.backoff_s):
                    return
                self.restarts += 1
                self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """Warm shutdown (SIGTERM: the running job is requeued by the broker), then SIGKILL."""
        self._stop.set()
        self._thread.join(timeout=5)
        proc = self.proc
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def watch_parent(poll_s: float = 1.0) -> None:
    """In an embedded worker: warm-stop (SIGTERM to itself) once the `mmvae serve` that started
    it is gone, e.g. killed with SIGKILL, so no orphan keeps consuming the queue."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return

    def watch() -> None:
        while os.getppid() == int(parent):
            time.sleep(poll_s)
        log.warning("the serving process %s is gone; stopping this embedded worker", parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
