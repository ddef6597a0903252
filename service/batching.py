"""Dynamic batching: concurrent requests for the same model and operation share a forward pass.

One `Batcher` per (model, operation) holds a bounded FIFO of pending requests. A collector task
waits until the oldest request has waited `max_wait_s` or enough rows with its key (same
parameters) are pending, then hands up to `max_rows` rows of them to a worker thread and cuts
the result back per request. A request that finds the queue full waits, in arrival order and
without CPU, up to `admission_wait_s` for a place, then gets 503 + Retry-After; a request that
waits longer than its timeout gets 504. With batching off every request runs alone, through
the same queue (so backpressure and timeouts behave the same).

Why wait before refusing: clients that ignore Retry-After resend a refused request at once. An
immediate 503 turns each of them into a busy loop that the event loop serves between forward
passes, and every pass needs several turns of that loop; with 512 such clients and a 16-place
queue, answered requests fell from ~700 to ~6 per second (bench/hardening.py measures it,
tests/adversarial pins it). Holding the refusal for `admission_wait_s` bounds its rate to
connections / admission_wait_s, and a place that frees up in the meantime goes to the oldest
waiter instead of being refused.

Per-request bookkeeping is O(1) (rows pending per key are counted, metric children cached, the
timeout is one timer rather than `wait_for(shield(...))`, and a new request wakes the collector
only when it can change its decision: an empty queue, a full batch, or batching off): under load
the event loop, not the forward pass, is the bottleneck of a small model (bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from service.errors import ApiError
from service.metrics import ServiceMetrics

Runner = Callable[[Hashable, Sequence[Any]], Sequence[Any]]
LIGHT, HEAVY = "light", "heavy"  # lanes: heavy requests (service/costs.py) queue apart


@dataclass(eq=False)
class _Pending:
    key: Hashable
    payload: Any
    rows: int
    future: asyncio.Future
    arrived: float = field(default_factory=time.monotonic)


class _Expired(Exception):
    """Set on a pending request's future when its timeout fires."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Expired())


class Batcher:
    """See the module docstring. `runner(key, payloads)` runs in the thread pool `executor()`
    returns (looked up per batch: the app replaces it at every start) and returns one result
    per payload, in order."""

    def __init__(
        self,
        label: tuple[str, str],
        runner: Runner,
        executor: Callable[[], Executor],
        metrics: ServiceMetrics,
        *,
        enabled: bool,
        max_rows: int,
        max_wait_s: float,
        queue_size: int,
        workers: int,
        admission_wait_s: float = 0.0,
    ) -> None:
        self.label, self.runner, self.executor, self.metrics = label, runner, executor, metrics
        self.enabled, self.max_rows, self.max_wait_s = enabled, max_rows, max_wait_s
        self.queue_size, self.workers = queue_size, workers
        self.admission_wait_s = admission_wait_s
        self._pending: deque[_Pending] = deque()
        self._waiters: deque[asyncio.Future] = deque()  # requests waiting for a place, oldest first
        self._admitted = 0  # waiters woken for a freed place that have not taken it yet
        self._rows: dict[Hashable, int] = {}  # rows pending per key
        # Read at scrape time, not set per request.
        metrics.queue_depth.labels(*label).set_function(lambda: len(self._pending))
        self._batch_rows = metrics.batch_rows.labels(*label)
        self._batch_requests = metrics.batch_requests.labels(*label)
        self._inference_seconds = metrics.inference_seconds.labels(*label)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()

    # ---- public ---------------------------------------------------------------------------
    async def submit(self, key: Hashable, payload: Any, rows: int, timeout_s: float) -> Any:
        """Queue one request and wait for its share of a forward pass."""
        self._ensure_started()
        if self._waiters or len(self._pending) + self._admitted >= self.queue_size:
            await self._wait_for_place()
        assert self._loop is not None
        item = _Pending(key, payload, rows, self._loop.create_future())
        was_empty = not self._pending
        self._pending.append(item)
        pending_rows = self._rows[key] = self._rows.get(key, 0) + rows
        if was_empty or not self.enabled or pending_rows >= self.max_rows:
            self._wake.set()  # otherwise the collector is already waiting for the head's deadline
        timer = self._loop.call_later(timeout_s, _expire, item.future)
        try:
            return await item.future
        except _Expired:
            self._drop(item)
            raise ApiError(
                504,
                "timeout",
                f"inference took longer than {timeout_s:g} s (setting MMVAE_REQUEST_TIMEOUT_S)",
            ) from None
        except asyncio.CancelledError:
            self._drop(item)
            raise
        finally:
            timer.cancel()

    async def _wait_for_place(self) -> None:
        """Wait in line for a place in the queue, up to `admission_wait_s`; 503 after that."""
        assert self._loop is not None
        deadline = self._loop.time() + self.admission_wait_s
        while True:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                self.metrics.rejected.labels(*self.label).inc()
                raise ApiError(
                    503,
                    "overloaded",
                    f"the queue for {self.label[0]}/{self.label[1]} is full "
                    f"({self.queue_size} pending, setting MMVAE_QUEUE_SIZE; waited "
                    f"{self.admission_wait_s:g} s, MMVAE_ADMISSION_WAIT_S); retry shortly",
                    headers={"Retry-After": "1"},
                )
            place = self._loop.create_future()
            self._waiters.append(place)
            timer = self._loop.call_later(remaining, _expire, place)
            try:
                await place
            except _Expired:
                with contextlib.suppress(ValueError):  # already dropped by _wake_waiters
                    self._waiters.remove(place)
                continue
            except asyncio.CancelledError:
                if place.cancelled() or place.exception() is not None:
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(place)
                else:  # woken for a place it will not take: hand it on
                    self._admitted -= 1
                    self._wake_waiters()
                raise
            finally:
                timer.cancel()
            self._admitted -= 1
            if len(self._pending) + self._admitted < self.queue_size:
                return

    def _wake_waiters(self) -> None:
        """Give the places free in the queue to the oldest waiters."""
        while self._waiters and len(self._pending) + self._admitted < self.queue_size:
            place = self._waiters.popleft()
            if not place.done():
                place.set_result(None)
                self._admitted += 1

    @property
    def depth(self) -> int:
        return len(self._pending)

    def forget_metrics(self) -> None:
        """Drop this batcher's metric series (its model is gone)."""
        self.metrics.remove_series(*self.label)

    async def close(self, reason: str = "the server is stopping") -> None:
        """Stop collecting; every pending request gets a 503 saying `reason`."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RuntimeError):
                await self._task
        refusal = ApiError(503, "shutting_down", reason)
        for future in [item.future for item in self._pending] + list(self._waiters):
            if not future.done():
                future.set_exception(refusal)
        self._pending.clear()
        self._waiters.clear()
        self._rows.clear()

    # ---- internals ------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._pending.clear()
            self._waiters.clear()
            self._admitted = 0
            self._rows.clear()
            self._wake = asyncio.Event()
            self._slots = asyncio.Semaphore(self.workers)
            self._task = loop.create_task(self._collect(), name=f"batcher-{self.label}")

    def _changed(self) -> None:
        """The queue shrank: wake the collector and hand freed places to waiters."""
        self._wake.set()
        if self._waiters:
            self._wake_waiters()

    def _drop(self, item: _Pending) -> None:
        with contextlib.suppress(ValueError):
            self._pending.remove(item)
            self._forget(item)
            self._changed()

    def _forget(self, item: _Pending) -> None:
        """Uncount a request that left the queue."""
        left = self._rows[item.key] - item.rows
        if left:
            self._rows[item.key] = left
        else:
            del self._rows[item.key]

    def _ready_rows(self, key: Hashable) -> int:
        return self._rows.get(key, 0)

    async def _collect(self) -> None:
        while True:
            if not self._pending:
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._pending[0]
            remaining = head.arrived + self.max_wait_s - time.monotonic()
            if self.enabled and remaining > 0 and self._ready_rows(head.key) < self.max_rows:
                await self._sleep(remaining)
                continue
            await self._slots.acquire()
            items = self._take()
            if not items:
                self._slots.release()
                continue
            task = asyncio.get_running_loop().create_task(self._run(items))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _sleep(self, seconds: float) -> None:
        """Until woken or `seconds` have passed (a timer, not `wait_for`: no task per wait)."""
        self._wake.clear()
        assert self._loop is not None
        timer = self._loop.call_later(seconds, self._wake.set)
        try:
            await self._wake.wait()
        finally:
            timer.cancel()

    def _take(self) -> list[_Pending]:
        """The oldest request and, batching on, later ones with its key while rows fit."""
        if not self._pending:
            return []
        key = self._pending[0].key
        taken: list[_Pending] = []
        kept: list[_Pending] = []
        rows = 0
        full = False
        for item in self._pending:
            if full or item.key != key:
                kept.append(item)
                continue
            if taken and (not self.enabled or rows + item.rows > self.max_rows):
                full = True
                kept.append(item)
                continue
            taken.append(item)
            rows += item.rows
        self._pending = deque(kept)
        for item in taken:
            self._forget(item)
        self._changed()
        return taken

    async def _run(self, items: list[_Pending]) -> None:
        self._batch_rows.observe(sum(i.rows for i in items))
        self._batch_requests.observe(len(items))
        start = time.perf_counter()
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.executor(), self._execute_live, items
            )
        except BaseException as err:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(err)
        else:
            for item, result in zip(items, results, strict=True):
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
        finally:
            self._inference_seconds.observe(time.perf_counter() - start)
            self._slots.release()

    def _execute_live(self, items: list[_Pending]) -> list[Any]:
        """Run the requests still awaited when a thread picks the batch up: one whose caller
        got its 504 (or went away) while the batch waited for a thread is abandoned."""
        live = [i for i, item in enumerate(items) if not item.future.done()]
        results: list[Any] = [None] * len(items)
        if live:
            done = self._execute(items[0].key, [items[i].payload for i in live])
            for i, result in zip(live, done, strict=True):
                results[i] = result
        return results

    def _execute(self, key: Hashable, payloads: list[Any]) -> list[Any]:
        """Run merged; if a merged batch fails, run each request alone so that one bad request
        fails alone."""
        try:
            return list(self.runner(key, payloads))
        except Exception:
            if len(payloads) == 1:
                raise
        results: list[Any] = []
        for payload in payloads:
            try:
                results.append(self.runner(key, [payload])[0])
            except Exception as err:
                results.append(err)
        return results


class BatcherPool:
    """The batchers of an app, one per (model, operation, lane), created on first use."""

    def __init__(self, factory: Callable[[tuple[str, str], str], Batcher]) -> None:
        self._factory = factory
        self._batchers: dict[tuple[str, str, str], Batcher] = {}

    def get(self, model: str, op: str, lane: str = LIGHT) -> Batcher:
        key = (model, op, lane)
        if key not in self._batchers:
            self._batchers[key] = self._factory((model, op), lane)
        return self._batchers[key]

    async def remove(self, model: str) -> None:
        """Close and forget a model's batchers and their metric series (on unload)."""
        for key in [k for k in self._batchers if k[0] == model]:
            batcher = self._batchers.pop(key)
            await batcher.close(f"model {model!r} was unloaded")
            batcher.forget_metrics()

    def depth(self) -> int:
        return sum(b.depth for b in self._batchers.values())

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
