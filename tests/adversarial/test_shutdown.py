"""SIGTERM (what Docker and systemd send) and SIGINT stop `mmvae serve` cleanly: exit 0 and no
embedded job worker left behind; a worker whose server died anyway stops by itself."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.adversarial.conftest import alive, children, serve


def _wait_gone(pids: list[int], seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        left = [p for p in pids if alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if alive(p)]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_and_its_worker(tmp_path: Path, sig: int) -> None:
    with serve(tmp_path, worker=True) as server:
        workers = children(server.proc.pid)
        assert workers, "the embedded worker did not start"
        server.signal(sig)
        assert server.proc.wait(timeout=60) == 0
        assert _wait_gone(workers, 30) == [], "the embedded worker outlived the server"


@pytest.mark.slow
def test_an_orphaned_embedded_worker_stops_itself(tmp_path: Path) -> None:
    with serve(tmp_path, worker=True) as server:
        workers = children(server.proc.pid)
        assert workers
        server.signal(signal.SIGKILL)  # no cleanup at all
        server.proc.wait(timeout=30)
        assert _wait_gone(workers, 60) == [], "an orphaned worker kept running"
