"""uvicorn on a loopback port for real: concurrent callers are merged into shared forward passes
(batch metrics) and every caller gets its own answer."""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from service.app import create_app
from tests.service.conftest import make_settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(store_dir: Path, tmp_path: Path) -> Iterator[tuple[str, object]]:
    app = create_app(make_settings(store_dir, tmp_path, batch_wait_ms=30))
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    else:
        raise AssertionError("server did not become ready")
    yield url, app
    srv.should_exit = True
    thread.join(10)


def _metric(text: str, name: str) -> float:
    pattern = rf'^{name}{{model="tiny",op="generate"}} ([0-9.e+]+)$'
    match = re.search(pattern, text, re.M)
    assert match, name
    return float(match.group(1))


def test_concurrent_requests_are_merged_and_answered_separately(server) -> None:
    url, _ = server
    n = 24

    async def call(client: httpx.AsyncClient, i: int) -> dict:
        body = {"inputs": {"label": [i % 10], "vec": [[i, -i, 0.5]]}, "targets": ["vec", "label"],
                "mean_latent": True}  # fmt: skip
        r = await client.post(f"{url}/v1/models/tiny/generate", json=body)
        assert r.status_code == 200, r.text
        return r.json()["outputs"]

    async def main() -> list[dict]:
        async with httpx.AsyncClient(timeout=30) as client:
            return await asyncio.gather(*(call(client, i) for i in range(n)))

    together = asyncio.run(main())
    text = httpx.get(f"{url}/metrics").text
    passes = _metric(text, "mmvae_batch_requests_count")
    assert _metric(text, "mmvae_batch_requests_sum") == n
    assert passes < n, "no request was merged"
    # each caller got its own answer: the same request alone gives the same output
    with httpx.Client(timeout=30) as client:
        for i in (0, 7, n - 1):
            body = {"inputs": {"label": [i % 10], "vec": [[i, -i, 0.5]]},
                    "targets": ["vec", "label"], "mean_latent": True}  # fmt: skip
            alone = client.post(f"{url}/v1/models/tiny/generate", json=body).json()["outputs"]
            assert alone["label"]["classes"] == together[i]["label"]["classes"]
            for a, b in zip(alone["vec"]["data"], together[i]["vec"]["data"], strict=True):
                assert abs(a - b) < 1e-5
