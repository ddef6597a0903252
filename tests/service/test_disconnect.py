"""A client that hangs up before its answer: its queued work is dropped, never run."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from service.batching import Batcher
from service.disconnect import CancelOnDisconnect, inference_paths
from service.metrics import ServiceMetrics

GENERATE = {"type": "http", "method": "POST", "path": "/v1/models/m/generate"}


def _receive_then_hang_up(hang_up: asyncio.Event):
    """The whole body at once; then, once `hang_up` is set, http.disconnect."""
    sent = False

    async def receive():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    return receive


def test_a_request_whose_client_hangs_up_leaves_the_queue_unrun() -> None:
    gate, ran = threading.Event(), []

    def runner(key, payloads):
        gate.wait(5)
        ran.extend(payloads)
        return payloads

    pool = ThreadPoolExecutor(1)
    batcher = Batcher(("m", "generate"), runner, lambda: pool, ServiceMetrics(), enabled=False,
                      max_rows=8, max_wait_s=0, queue_size=8, workers=1)  # fmt: skip

    def app_for(payload: str):
        async def app(scope, receive, send):
            await receive()
            result = await batcher.submit("k", payload, 1, 10)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": result.encode()})

        return app

    async def main():
        sent: dict[str, list] = {"first": [], "gone": []}
        hang_ups = {name: asyncio.Event() for name in sent}
        calls = {
            name: asyncio.ensure_future(
                CancelOnDisconnect(app_for(name), inference_paths(frozenset({"generate"})))(
                    GENERATE, _receive_then_hang_up(hang_ups[name]), _collect(sent[name])
                )
            )
            for name in sent
        }
        await asyncio.sleep(0.1)  # "first" runs (held by the gate), "gone" waits in the queue
        depth_before = batcher.depth
        hang_ups["gone"].set()
        await asyncio.wait_for(calls["gone"], 2)  # returns: nothing to answer
        depth_after = batcher.depth
        gate.set()
        await asyncio.wait_for(calls["first"], 5)
        hang_ups["first"].set()
        await batcher.close()
        return sent, depth_before, depth_after

    sent, before, after = asyncio.run(main())
    assert (before, after) == (1, 0)
    assert ran == ["first"]  # the hung-up request never reached the model
    assert sent["gone"] == [] and sent["first"][0]["status"] == 200


def _collect(into: list):
    async def send(message):
        into.append(message)

    return send


def test_a_disconnect_after_the_answer_started_cancels_nothing() -> None:
    finished = []

    async def main():
        hang_up = asyncio.Event()

        async def app(scope, receive, send):
            await receive()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            hang_up.set()  # the client leaves while the body is still being produced
            await asyncio.sleep(0.1)
            await send({"type": "http.response.body", "body": b"x"})
            finished.append(True)

        sent: list = []
        middleware = CancelOnDisconnect(app, inference_paths(frozenset({"generate"})))
        await middleware(GENERATE, _receive_then_hang_up(hang_up), _collect(sent))
        return sent

    sent = asyncio.run(main())
    assert finished == [True]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


def test_only_read_only_inference_posts_are_selected() -> None:
    applies = inference_paths(frozenset({"generate", "encode"}))
    assert applies(GENERATE)
    assert applies({**GENERATE, "path": "/v1/models/x/encode"})
    assert not applies({**GENERATE, "method": "GET"})
    assert not applies({**GENERATE, "path": "/v1/jobs"})
    assert not applies({**GENERATE, "path": "/v1/models/x/evaluate"})
