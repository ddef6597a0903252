"""A real `mmvae serve` process for the hostile-input tests: they assert what a client sees
(status, time) and what the process does (memory, children, exit code), not what a test client
sees."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.deploy.conftest import clean_env, find_tool

STARTUP_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (from /proc: no extra dependency)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Server:
    """`mmvae serve` on a free loopback port, its process and base URL."""

    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def signal(self, sig: int) -> None:
        os.kill(self.proc.pid, sig)


@contextmanager
def serve(
    tmp_path: Path, worker: bool = False, ready: str = "/readyz", **env: str
) -> Iterator[Server]:
    """The server, answering 200 on `ready` (by default: its models loaded); stopped after."""
    port = free_port()
    argv = [find_tool("mmvae") or "mmvae", "serve", "--port", str(port)]
    if not worker:
        argv.append("--no-worker")
    proc = subprocess.Popen(
        argv,
        cwd=tmp_path,
        env=clean_env(MMVAE_DATA_DIR=str(tmp_path / "data"), MMVAE_LOG_LEVEL="WARNING", **env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    server = Server(proc, f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            assert proc.poll() is None, f"mmvae serve exited: {proc.stderr.read()}"
            try:
                if httpx.get(f"{server.url}{ready}", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.3)
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
