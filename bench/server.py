"""uvicorn serving the app in a subprocess on loopback, for the serving and memory benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

# The app under uvicorn, plus RAW_PATH answered by a bare ASGI function in front of the app: the
# floor of uvicorn alone (no middleware, no routing), a reference below any endpoint of the app.
RAW_PATH = "/__bench_raw"
SERVER = f"""
import sys, uvicorn
from service.app import create_app
app = create_app()
BODY = b'{{"status":"ok"}}'
START = {{"type": "http.response.start", "status": 200, "headers": [
    (b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]}}
async def served(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "{RAW_PATH}":
        await send(START)
        await send({{"type": "http.response.body", "body": BODY}})
        return
    await app(scope, receive, send)
uvicorn.run(served, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            http=sys.argv[2], loop=sys.argv[3])
"""
# uvicorn's HTTP parser and event loop: "auto" takes httptools and uvloop (installed with this
# project), "pure" the pure-Python h11 parser and asyncio's own loop.
STACKS = {"auto": ("auto", "auto"), "pure": ("h11", "asyncio")}


def stack_description(stack: str) -> str:
    """Which parser and loop uvicorn will pick for `stack` in this environment."""
    import importlib.util

    if stack == "pure":
        return "h11 + asyncio"
    have = [m for m in ("httptools", "uvloop") if importlib.util.find_spec(m)]
    http = "httptools" if "httptools" in have else "h11"
    loop = "uvloop" if "uvloop" in have else "asyncio"
    return f"{http} + {loop}"


ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """user + system CPU time of the server process so far, from /proc/<pid>/stat."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(
    env: dict[str, str],
    data_dir: str,
    root: Path = ROOT,
    ready_timeout: float = 120,
    stack: str = "auto",
) -> Iterator[Server]:
    """Start uvicorn with `MMVAE_*` settings from `env`, wait for /readyz, stop it afterwards.
    `root`: the source tree to serve (another checkout gives before/after comparisons);
    `stack`: a key of STACKS."""
    port = free_port()
    full = {
        **os.environ,
        "MMVAE_DATA_DIR": data_dir,
        "MMVAE_LOG_LEVEL": "WARNING",
        "MMVAE_QUEUE_SIZE": "1024",
        **env,
        "PYTHONPATH": str(root),
    }
    command = [sys.executable, "-c", SERVER, str(port), *STACKS[stack]]
    proc = subprocess.Popen(command, env=full, cwd=root)
    server = Server(proc, port)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            try:
                if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None:
                raise RuntimeError("the server exited during startup")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server was not ready in {ready_timeout} s")
            time.sleep(0.05)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
