"""Hostile requests to a real server: every one is refused with a 4xx naming the field (never
a 500), quickly, without the server's memory growing, and the server keeps serving."""

from __future__ import annotations

import base64
import io
import json
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.adversarial.conftest import Server, rss_bytes, serve

GEN = "/v1/models/digits-demo/generate"
LL = "/v1/models/digits-demo/log-likelihood"
MAX_SECONDS = 3.0  # a refusal is a check, not work
MAX_GROWTH = 64 * 1024**2  # bytes of RSS a refused request may leave behind


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def _png_declaring(width: int, height: int) -> str:
    """A PNG whose header declares width × height grey pixels (its data is one tiny chunk)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    raw = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
    raw += chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    return base64.b64encode(raw).decode()


def _npz_with_broken_directory() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, image=np.zeros((4, 1, 8, 8), np.float32))
    raw = buffer.getvalue()
    return raw.replace(b"PK\x01\x02", b"XX\x01\x02")  # central directory entries unreadable


HOSTILE = {
    "png scale": (
        GEN,
        {
            "inputs": {"label": list(range(10)) * 25},
            "n_samples": 64,
            "encoding": "png",
            "png_scale": 32,
        },
        "n_samples",
    ),
    "likelihood K x B": (LL, {"inputs": {"label": list(range(10)) * 25}, "k": 5000}, "k"),
    "decompression bomb": (
        GEN,
        {"inputs": {"image": [_png_declaring(20_000, 20_000)]}},
        "inputs.image[0]",
    ),
    "huge class index": (GEN, {"inputs": {"label": [2**1024]}}, "inputs.label[0]"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_request_is_a_quick_4xx_and_the_server_goes_on(server: Server, case: str) -> None:
    path, body, field = HOSTILE[case]
    with server.client() as client:
        before = rss_bytes(server.proc.pid)
        start = time.monotonic()
        response = client.post(path, json=body)
        seconds = time.monotonic() - start
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["field"].startswith(field), error
        assert seconds < MAX_SECONDS
        assert rss_bytes(server.proc.pid) - before < MAX_GROWTH
        ok = client.post(GEN, json={"inputs": {"label": [3]}, "targets": ["image"]})
        assert ok.status_code == 200


@pytest.mark.slow
def test_png_answers_are_bounded_also_through_the_accept_header(server: Server) -> None:
    body = {"inputs": {"label": list(range(10)) * 25}, "n_samples": 64, "png_scale": 32}
    with server.client() as client:
        response = client.post(GEN, json=body, headers={"Accept": "image/png"})
        assert response.status_code == 422
        assert "MMVAE_MAX_PNG_PIXELS" in response.json()["error"]["message"]


@pytest.mark.slow
def test_a_corrupted_npz_is_a_422_on_upload_and_on_evaluate(server: Server) -> None:
    raw = _npz_with_broken_directory()
    with server.client() as client:
        upload = client.post(
            "/v1/datasets", content=raw, headers={"Content-Type": "application/octet-stream"}
        )
        assert upload.status_code == 422, upload.text
        assert upload.json()["error"]["field"] == "file"
        body = {"dataset": {"kind": "npz", "data_base64": base64.b64encode(raw).decode()}}
        evaluate = client.post("/v1/models/digits-demo/evaluate", json=body)
        assert evaluate.status_code == 422, evaluate.text
        assert evaluate.json()["error"]["field"] == "dataset.data_base64"


@pytest.mark.slow
def test_an_unreachable_redis_is_a_503_with_retry_after(tmp_path: Path) -> None:
    spec = {"type": "train", "model": {"model_type": "mvae"}, "dataset": "digits"}
    redis = "redis://127.0.0.1:1/0"  # nothing listens there
    with serve(tmp_path, ready="/healthz", MMVAE_REDIS_URL=redis) as down, down.client() as client:
        for response in (client.post("/v1/jobs", json=spec), client.get("/v1/jobs")):
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"]


# Heavy enough to take seconds on any machine: 250 rows x K 5000, legal on a server whose work
# limit is raised (the default limit admits 60 rows, which a fast CPU finishes within a second).
HEAVY = {"inputs": {"label": list(range(10)) * 25}, "k": 5000}


@pytest.fixture(scope="module")
def heavy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("heavy"), MMVAE_MAX_REQUEST_WORK=str(10**12)) as running:
        yield running


@pytest.mark.slow
def test_a_legal_heavy_request_does_not_stall_cheap_ones(heavy_server: Server) -> None:
    """A legal likelihood taking seconds runs in the heavy lane while one-label generates keep
    answering at once."""
    server, heavy = heavy_server, HEAVY
    with ThreadPoolExecutor(1) as pool, server.client(timeout=300) as client:
        running = pool.submit(client.post, LL, json=heavy)
        time.sleep(0.5)  # the heavy request holds its thread by now
        waits = []
        for _ in range(5):
            start = time.monotonic()
            ok = client.post(GEN, json={"inputs": {"label": [3]}, "targets": ["image"]})
            waits.append(time.monotonic() - start)
            assert ok.status_code == 200
        assert not running.done(), "the heavy request was too quick to show anything"
        assert running.result().status_code == 200
    assert max(waits) < 1.0, waits


def _raw(server: Server, request: bytes, wait_s: float = 10) -> bytes:
    """Send `request` bytes on a fresh connection; whatever comes back within `wait_s`."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=wait_s) as conn:
        conn.sendall(request)
        try:
            return conn.recv(65536)
        except TimeoutError:
            return b""


@pytest.mark.slow
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_stalled_body_is_cut_off_with_408(tmp_path: Path, framing: str) -> None:
    head = f"POST {GEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if framing == "chunked":
        request = head + 'Transfer-Encoding: chunked\r\n\r\n5\r\n{"inp\r\n'
    else:
        request = head + 'Content-Length: 100\r\n\r\n{"inputs":'
    with serve(tmp_path, MMVAE_BODY_TIMEOUT_S="1") as server:
        start = time.monotonic()
        answer = _raw(server, request.encode())
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert time.monotonic() - start < 5
        with server.client() as client:
            assert client.post(GEN, json={"inputs": {"label": [3]}}).status_code == 200


@pytest.mark.slow
def test_a_client_hanging_up_mid_body_is_no_server_error(server: Server) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    for path in (GEN, "/v1/datasets"):
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{".encode()
            )
        time.sleep(0.3)
    with server.client() as client:
        metrics = client.get("/metrics").text
    assert 'status="500"' not in metrics


def _passes(client, op: str) -> float:
    """Forward passes the server has run for `op` (mmvae_batch_requests_count)."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("mmvae_batch_requests_count") and f'op="{op}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.slow
def test_work_queued_by_a_client_that_hung_up_is_never_computed(heavy_server: Server) -> None:
    """Three likelihoods share one heavy thread: the first runs, the second and third wait in
    its queue, the second's client hangs up. When the third is answered (FIFO: the second's
    turn came before), the server has run two passes, not three."""
    server, labels = heavy_server, HEAVY
    body = json.dumps({**labels, "seed": 1}).encode()
    request = (
        f"POST {LL} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    host, port = server.url.removeprefix("http://").split(":")
    with ThreadPoolExecutor(2) as pool, server.client(timeout=300) as client:
        before = _passes(client, "log-likelihood/heavy")
        first = pool.submit(client.post, LL, json=labels)
        time.sleep(0.5)  # the first holds the heavy thread
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(request)
            time.sleep(0.3)  # queued behind the first
        third = pool.submit(client.post, LL, json={**labels, "seed": 3})
        assert not first.done(), "the first request was too quick to show anything"
        assert first.result().status_code == 200 and third.result().status_code == 200
        assert _passes(client, "log-likelihood/heavy") - before == 2
