"""`CancelOnDisconnect`: a request whose client hangs up before its answer is cancelled, so the
work it queued is dropped instead of done for nobody.

ASGI servers report a hang-up only to a `receive()` call; once a handler has read its body it
never calls `receive()` again, so without this middleware a caller that gave up still costs its
whole forward pass. Here, as soon as the body is in, a watcher task waits on `receive()`: an
`http.disconnect` before the response has started cancels the handler's task (a request waiting
in a batcher's queue leaves it; one already in a forward pass has its result discarded). The
handler's own later `receive()` calls get the watcher's message, so the server's single
`receive` has one reader at a time.

Only for the routes `applies` selects: cancelling a handler halfway is safe where it only reads
(inference), not where it writes state (job submission, uploads).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class CancelOnDisconnect:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, applies: Callable[[Scope], bool]) -> None:
        self.app, self.applies = app, applies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.applies(scope):
            await self.app(scope, receive, send)
            return
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        after_body: asyncio.Future[Message] = loop.create_future()
        watcher: asyncio.Task | None = None
        responded = hung_up = False

        async def watch() -> None:
            nonlocal hung_up
            message = await receive()
            if message["type"] == "http.disconnect" and not responded:
                hung_up = True
                task.cancel()
            if not after_body.done():
                after_body.set_result(message)

        async def receive_then_watch() -> Message:
            nonlocal watcher
            if watcher is not None:  # the body is in: the watcher is the one reader
                return await asyncio.shield(after_body)
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                watcher = loop.create_task(watch())
            return message

        async def send_noting_start(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
            await send(message)

        try:
            await self.app(scope, receive_then_watch, send_noting_start)
        except asyncio.CancelledError:
            if hung_up and task.uncancel() == 0:
                return  # nobody to answer; the access log records a 499
            raise
        finally:
            if watcher is not None and not watcher.done():
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher


def inference_paths(operations: frozenset[str]) -> Callable[[Scope], bool]:
    """Selects POST /v1/models/{name}/{op} for the given read-only operations."""

    def applies(scope: Scope) -> bool:
        path: str = scope.get("path", "")
        return (
            scope.get("method") == "POST"
            and path.startswith("/v1/models/")
            and path.rsplit("/", 1)[-1] in operations
        )

    return applies
