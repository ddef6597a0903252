"""The dynamic batcher: merging, grouping by key, seeded isolation, backpressure, timeouts."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from core.data.batch import Batch
from service.batching import HEAVY, LIGHT, Batcher, BatcherPool
from service.errors import ApiError
from service.inference import Work, group_key, run
from service.metrics import ServiceMetrics
from tests.service.conftest import tiny_model


def _batcher(runner, **kw) -> Batcher:
    options = {"enabled": True, "max_rows": 64, "max_wait_s": 0.05, "queue_size": 100, "workers": 1}
    options.update(kw)
    pool = ThreadPoolExecutor(1)
    metrics = options.pop("metrics", None) or ServiceMetrics()
    return Batcher(("m", "op"), runner, lambda: pool, metrics, **options)


def test_concurrent_requests_share_a_forward_pass() -> None:
    calls: list[list[int]] = []

    def runner(key, payloads):
        calls.append(list(payloads))
        return [p * 10 for p in payloads]

    async def main():
        b = _batcher(runner)
        results = await asyncio.gather(*(b.submit("k", i, 1, 5) for i in range(8)))
        await b.close()
        return results

    assert asyncio.run(main()) == [i * 10 for i in range(8)]
    assert calls == [list(range(8))]


def test_keys_group_and_max_rows_split() -> None:
    calls: list[tuple] = []

    def runner(key, payloads):
        calls.append((key, list(payloads)))
        return payloads

    async def main():
        b = _batcher(runner, max_rows=3)
        jobs = [b.submit("a" if i % 2 else "b", i, 1, 5) for i in range(8)]
        out = await asyncio.gather(*jobs)
        await b.close()
        return out

    assert asyncio.run(main()) == list(range(8))
    assert all(len({k for k in [key]}) == 1 and len(p) <= 3 for key, p in calls)
    assert sorted(x for _, p in calls for x in p) == list(range(8))


def test_batching_off_runs_each_alone() -> None:
    sizes: list[int] = []

    def runner(key, payloads):
        sizes.append(len(payloads))
        return payloads

    async def main():
        b = _batcher(runner, enabled=False)
        await asyncio.gather(*(b.submit("k", i, 1, 5) for i in range(5)))
        await b.close()

    asyncio.run(main())
    assert sizes == [1] * 5


def test_one_bad_request_fails_alone() -> None:
    def runner(key, payloads):
        if "bad" in payloads:
            raise ValueError("bad input")
        return payloads

    async def main():
        b = _batcher(runner)
        out = await asyncio.gather(
            *(b.submit("k", p, 1, 5) for p in ["a", "bad", "c"]), return_exceptions=True
        )
        await b.close()
        return out

    a, bad, c = asyncio.run(main())
    assert (a, c) == ("a", "c") and isinstance(bad, ValueError)


def test_full_queue_is_503_with_retry_after() -> None:
    gate = threading.Event()

    def runner(key, payloads):
        gate.wait(5)
        return payloads

    metrics = ServiceMetrics()
    depth = []

    def gauge() -> float | None:
        return metrics.registry.get_sample_value("mmvae_queue_depth", {"model": "m", "op": "op"})

    async def main():
        b = _batcher(runner, queue_size=2, max_wait_s=0, metrics=metrics)
        first = asyncio.ensure_future(b.submit("k", 0, 1, 5))
        await asyncio.sleep(0.05)  # the first is running; the next two wait in the queue
        queued = [asyncio.ensure_future(b.submit("k", i, 1, 5)) for i in (1, 2)]
        await asyncio.sleep(0.01)
        depth.append(gauge())
        with pytest.raises(ApiError) as err:
            await b.submit("k", 3, 1, 5)
        gate.set()
        await asyncio.gather(first, *queued)
        depth.append(gauge())
        await b.close()
        return err.value

    error = asyncio.run(main())
    assert error.status == 503 and error.headers["Retry-After"] == "1"
    assert depth == [2, 0]  # the queue-depth gauge reads the queue when scraped


def _gated_runner() -> tuple[threading.Event, Callable, list]:
    gate, seen = threading.Event(), []

    def runner(key, payloads):
        gate.wait(5)
        seen.extend(payloads)
        return payloads

    return gate, runner, seen


def test_a_full_queue_admits_waiters_in_arrival_order_when_places_free() -> None:
    """Refusing at once turns clients that ignore Retry-After into busy loops; waiting for a
    place does not, and the oldest waiter gets the first place that frees."""
    gate, runner, seen = _gated_runner()

    async def main():
        b = _batcher(runner, queue_size=1, max_wait_s=0, admission_wait_s=5)
        running = asyncio.ensure_future(b.submit("k", 0, 1, 5))
        await asyncio.sleep(0.05)  # 0 runs; 1 fills the queue; 2 and 3 wait for a place
        jobs = [asyncio.ensure_future(b.submit("k", i, 1, 5)) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        waiting = len(b._waiters)
        gate.set()
        out = await asyncio.gather(running, *jobs)
        await b.close()
        return waiting, out

    waiting, out = asyncio.run(main())
    assert waiting == 2
    assert out == [0, 1, 2, 3] and seen == [0, 1, 2, 3]


def test_a_waiter_gets_503_after_the_admission_wait_naming_both_settings() -> None:
    gate, runner, _ = _gated_runner()

    async def main():
        b = _batcher(runner, queue_size=1, max_wait_s=0, admission_wait_s=0.1)
        running = asyncio.ensure_future(b.submit("k", 0, 1, 5))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(b.submit("k", 1, 1, 5))
        await asyncio.sleep(0.01)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(ApiError) as err:
            await b.submit("k", 2, 1, 5)
        waited = loop.time() - start
        left = len(b._waiters)
        gate.set()
        await asyncio.gather(running, queued)
        await b.close()
        return err.value, waited, left

    error, waited, left = asyncio.run(main())
    assert error.status == 503 and error.headers["Retry-After"] == "1"
    assert "MMVAE_QUEUE_SIZE" in error.message and "MMVAE_ADMISSION_WAIT_S" in error.message
    assert 0.09 <= waited < 1 and left == 0


def test_a_cancelled_waiter_hands_its_place_on_and_close_refuses_waiters() -> None:
    gate, runner, seen = _gated_runner()

    async def main():
        b = _batcher(runner, queue_size=1, max_wait_s=0, admission_wait_s=5)
        running = asyncio.ensure_future(b.submit("k", 0, 1, 5))
        await asyncio.sleep(0.05)
        queued = asyncio.ensure_future(b.submit("k", 1, 1, 5))
        gone = asyncio.ensure_future(b.submit("k", 2, 1, 5))
        after = asyncio.ensure_future(b.submit("k", 3, 1, 5))
        await asyncio.sleep(0.05)
        gone.cancel()  # its caller hung up while waiting
        gate.set()
        out = await asyncio.gather(running, queued, after)
        gate.clear()
        blocked = asyncio.ensure_future(b.submit("k", 4, 1, 5))
        await asyncio.sleep(0.05)
        fill = asyncio.ensure_future(b.submit("k", 5, 1, 5))
        waiter = asyncio.ensure_future(b.submit("k", 6, 1, 5))
        await asyncio.sleep(0.05)
        await b.close("stopping")
        gate.set()
        refused = await asyncio.gather(fill, waiter, return_exceptions=True)
        await asyncio.gather(blocked, return_exceptions=True)
        return out, refused

    out, refused = asyncio.run(main())
    assert out == [0, 1, 3] and 2 not in seen
    assert [(e.status, e.code) for e in refused] == [(503, "shutting_down")] * 2


def test_timeout_is_504() -> None:
    gate = threading.Event()

    def runner(key, payloads):
        gate.wait(5)
        return payloads

    async def main():
        b = _batcher(runner, max_wait_s=0)
        with pytest.raises(ApiError) as err:
            await b.submit("k", 0, 1, 0.1)
        gate.set()
        await b.close()
        return err.value

    assert asyncio.run(main()).status == 504


def _label_batch(classes: list[int]) -> Batch:
    n = len(classes)
    data = {
        "image": torch.zeros(n, 1, 8, 8),
        "label": torch.nn.functional.one_hot(torch.tensor(classes), 10).float(),
        "vec": torch.zeros(n, 3),
    }
    masks = {m: torch.zeros(n, dtype=torch.bool) for m in data}
    masks["label"][:] = True
    return Batch(data, masks)


def test_merged_results_equal_separate_ones() -> None:
    model = tiny_model()
    params = {"targets": ["vec"], "n_samples": 1, "mean_latent": True}
    works = [
        Work(model, params, len(c), decode=functools.partial(_label_batch, c))
        for c in ([1], [2, 3], [4])
    ]
    merged = run("generate", works)
    for work, out in zip(works, merged, strict=True):
        alone = run("generate", [work])[0]
        assert torch.allclose(out["vec"], alone["vec"], atol=1e-6)


def test_seeded_requests_never_share_a_key() -> None:
    params = {"n_samples": 1}
    assert group_key("g", params, None, object()) == group_key("g", params, None, object())
    assert group_key("g", params, 1, object()) != group_key("g", params, 1, object())


def test_a_full_batch_leaves_before_the_wait_and_a_lone_request_after_it() -> None:
    """A request that fills the batch wakes the collector at once; a lone one waits its time."""

    async def timed(b: Batcher, rows: list[int]) -> float:
        start = asyncio.get_running_loop().time()
        await asyncio.gather(*(b.submit("k", i, r, 5) for i, r in enumerate(rows)))
        return asyncio.get_running_loop().time() - start

    async def main() -> tuple[float, float]:
        b = _batcher(lambda key, payloads: payloads, max_rows=4, max_wait_s=0.3)
        full = await timed(b, [2, 2])
        lone = await timed(b, [1])
        await b.close()
        return full, lone

    full, lone = asyncio.run(main())
    assert full < 0.2 and 0.25 < lone < 2


def test_a_request_whose_inputs_fail_to_decode_fails_alone() -> None:
    model = tiny_model()
    params = {"targets": ["vec"], "n_samples": 1, "mean_latent": True}

    def broken() -> Batch:
        raise ApiError(422, "invalid_input", "inputs.label[0]: bad", "inputs.label[0]")

    good = [
        Work(model, params, len(c), decode=functools.partial(_label_batch, c)) for c in ([1], [2])
    ]
    results = run("generate", [good[0], Work(model, params, 1, decode=broken), good[1]])
    assert isinstance(results[1], ApiError) and results[1].field == "inputs.label[0]"
    for work, out in zip(good, (results[0], results[2]), strict=True):
        assert torch.allclose(out["vec"], run("generate", [work])[0]["vec"], atol=1e-6)


def test_finish_runs_on_each_share_in_the_worker() -> None:
    model = tiny_model()
    params = {"targets": ["vec"], "n_samples": 1, "mean_latent": True}
    seen: list[str] = []

    def finish(out: dict[str, torch.Tensor]) -> tuple:
        seen.append(threading.current_thread().name)
        return tuple(out["vec"].shape)

    works = [
        Work(model, params, len(c), decode=functools.partial(_label_batch, c), finish=finish)
        for c in ([1], [2, 3])
    ]
    assert run("generate", works) == [(1, 1, 3), (1, 2, 3)]
    assert seen == [threading.current_thread().name] * 2


def test_work_whose_caller_timed_out_while_queued_for_a_thread_is_abandoned() -> None:
    """Two batchers share one thread: the second's request times out while the first holds
    the thread; when the thread frees up, the abandoned request is not computed."""
    gate, ran = threading.Event(), []
    pool = ThreadPoolExecutor(1)

    def runner(key, payloads):
        ran.extend(payloads)
        gate.wait(5)
        return payloads

    def make(label: str) -> Batcher:
        options = {"enabled": True, "max_rows": 64, "max_wait_s": 0, "queue_size": 10}
        return Batcher(("m", label), runner, lambda: pool, ServiceMetrics(), **options, workers=1)

    async def main():
        first, second = make("a"), make("b")
        holder = asyncio.ensure_future(first.submit("k", "first", 1, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as err:
            await second.submit("k", "abandoned", 1, 0.1)
        gate.set()
        assert await holder == "first"
        await asyncio.sleep(0.1)  # the thread has picked up the second batch by now
        await first.close()
        await second.close()
        return err.value

    assert asyncio.run(main()).status == 504
    assert ran == ["first"]


def test_removing_a_models_batchers_closes_them_and_drops_their_metric_series() -> None:
    metrics = ServiceMetrics()
    pool = ThreadPoolExecutor(1)

    def factory(label, lane):
        options = {"enabled": True, "max_rows": 8, "max_wait_s": 0, "queue_size": 4, "workers": 1}
        return Batcher(
            (label[0], f"{label[1]}/{lane}"), lambda k, p: p, lambda: pool, metrics, **options
        )

    async def main():
        batchers = BatcherPool(factory)
        for lane in (LIGHT, HEAVY):
            assert await batchers.get("gone", "generate", lane).submit("k", 1, 1, 5) == 1
        assert await batchers.get("kept", "generate").submit("k", 2, 1, 5) == 2
        await batchers.remove("gone")
        text = metrics.render().decode()
        await batchers.close()
        return text

    text = asyncio.run(main())
    assert 'model="gone"' not in text
    assert 'model="kept"' in text
