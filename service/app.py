"""`create_app(settings)`: the FastAPI application, its state, middleware and routers.

Extension points for later work (jobs, datasets): pass more routers in `extra_routers` (or
`app.include_router` after creation) and add readiness probes to `app.state.readiness_checks`
(name → callable returning None when healthy, else the problem), e.g. the Celery broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import torch
from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import __version__
from service import gc_tuning, inference, loading
from service.batching import HEAVY, LIGHT, Batcher, BatcherPool
from service.direct_dispatch import DirectDispatch
from service.disconnect import CancelOnDisconnect, inference_paths
from service.errors import CLIENT_CLOSED, install_error_handlers
from service.job_schemas import install_openapi
from service.logging import REQUEST_ID_HEADER, log_request, new_request_id, request_id
from service.metrics import ServiceMetrics
from service.registry import ModelRegistry
from service.routes import evaluate, health, latent, models
from service.routes import inference as inference_routes
from service.security import BodyLimitMiddleware
from service.settings import Settings
from service.ui import mount_ui
from workers.redaction import redact
from workers.settings import WorkerSettings

log = logging.getLogger("service.app")
ReadinessCheck = Callable[[], "str | None"]


class ObservabilityMiddleware:
    """Request id (X-Request-ID in and out, in every log line), access log, request metrics."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER.lower().encode(), b"").decode("latin-1")
        rid = new_request_id(given)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = CLIENT_CLOSED  # until a response starts: none at all means the client left

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), rid.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.observe_request(method, template, status, time.perf_counter() - started)
            log_request(method, scope.get("path", ""), status, started)
            request_id.reset(token)


def store_check(settings: Settings) -> ReadinessCheck:
    """The model store's folder exists (or can be created) and is readable and writable."""

    def check() -> str | None:
        root = settings.resolved_store_dir
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # /readyz is public: the message names no server folder
            return redact(f"store {root}: {err}", settings.data_dir, root)
        if not os.access(root, os.R_OK | os.W_OK | os.X_OK):
            return "store <store>: not readable and writable"
        return None

    return check


async def _preload(app: FastAPI) -> None:
    """Load and warm up every MMVAE_PRELOAD model, off the event loop; record each outcome."""
    settings: Settings = app.state.settings
    for spec in settings.preload:
        label = f"preload:{spec}"
        try:
            request = loading.parse_preload(spec)
            entry = await asyncio.to_thread(loading.load, request, settings)
            app.state.registry.put(entry)
            app.state.preload_status[label] = "ok"
            log.info("loaded model %s from %s", entry.name, spec)
        except Exception as err:
            message = getattr(err, "message", None) or str(err) or type(err).__name__
            app.state.preload_status[label] = f"failed: {message}"
            log.error("could not preload %s: %s", spec, message)
    gc_tuning.settle()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    if settings.gc_tuning:
        gc_tuning.tune()
    app.state.executors = _executors(settings)  # fresh pools per start (tests restart apps)
    task = asyncio.create_task(_preload(app), name="preload")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await app.state.batchers.close()
        for executor in app.state.executors.values():
            executor.shutdown(wait=False, cancel_futures=True)
        gc_tuning.restore()


def _executors(settings: Settings) -> dict[str, ThreadPoolExecutor]:
    """A thread pool per lane: heavy requests (service/costs.py) never wait for cheap ones'
    threads, nor cheap ones for theirs."""
    threads = {LIGHT: settings.inference_workers, HEAVY: settings.heavy_workers}
    return {
        lane: ThreadPoolExecutor(n, thread_name_prefix=f"inference-{lane}")
        for lane, n in threads.items()
    }


class PathBodyLimits:
    """The body limit and stall timeout, with larger limits on some paths (dataset uploads):
    `overrides` maps a path to (bytes, the setting that sets them)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        timeout_s: float,
        overrides: dict[str, tuple[int, str]],
    ) -> None:
        self.default = BodyLimitMiddleware(app, max_bytes, "MMVAE_MAX_BODY_BYTES", timeout_s)
        self.special = {
            path: BodyLimitMiddleware(app, n, setting, timeout_s)
            for path, (n, setting) in overrides.items()
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chosen = self.special.get(scope.get("path", "")) if scope["type"] == "http" else None
        await (chosen or self.default)(scope, receive, send)


def _job_routers(app: FastAPI, job_settings: WorkerSettings) -> list[APIRouter]:
    """Jobs and datasets: a job client in `app.state.jobs`, the broker in readiness."""
    from service.jobs_client import JobsClient
    from service.routes import datasets, jobs

    app.state.jobs = JobsClient(job_settings)
    app.state.readiness_checks["broker"] = app.state.jobs.broker_check
    return [jobs.router, datasets.router]


def create_app(
    settings: Settings | None = None,
    extra_routers: Sequence[APIRouter] = (),
    job_settings: WorkerSettings | None = None,
) -> FastAPI:
    """A new application with its own registry, batchers, thread pool and metrics registry.
    Job routes use `job_settings` (default: `settings.job_settings()`) unless jobs are off."""
    settings = settings or Settings()
    app = FastAPI(
        title="mmvae-service",
        version=__version__,
        description="Multimodal VAEs over HTTP: load models, encode, generate, reconstruct, "
        "sample, score and evaluate.",
        lifespan=_lifespan,
    )
    metrics = ServiceMetrics()

    def make_batcher(label: tuple[str, str], lane: str) -> Batcher:
        op = label[1]
        return Batcher(
            label if lane == LIGHT else (label[0], f"{op}/{lane}"),
            lambda _key, works: inference.run(op, works),
            lambda: app.state.executors[lane],
            metrics,
            enabled=settings.batching,
            max_rows=settings.max_batch_size,
            max_wait_s=settings.batch_wait_ms / 1000,
            queue_size=settings.queue_size,
            admission_wait_s=settings.admission_wait_s,
            workers=settings.inference_workers if lane == LIGHT else settings.heavy_workers,
        )

    app.state.settings = settings
    app.state.metrics = metrics
    app.state.executors = _executors(settings)
    app.state.registry = ModelRegistry(settings.max_models)
    app.state.batchers = BatcherPool(make_batcher)
    app.state.preload_status = {f"preload:{s}": "pending" for s in settings.preload}
    app.state.readiness_checks = {"store": store_check(settings)}

    install_error_handlers(app)
    install_openapi(app)
    job_routers: list[APIRouter] = []
    body_overrides: dict[str, tuple[int, str]] = {}
    if settings.jobs_enabled:
        job_settings = job_settings or settings.job_settings()
        job_routers = _job_routers(app, job_settings)
        limit = max(settings.max_body_bytes, job_settings.max_dataset_bytes + 64 * 1024)
        body_overrides["/v1/datasets"] = (limit, "MMVAE_MAX_DATASET_BYTES")
    routers = (
        health.router,
        models.router,
        inference_routes.router,
        evaluate.router,
        latent.router,
        *job_routers,
        *extra_routers,
    )
    for router in routers:
        app.include_router(router)
    if settings.ui:
        mount_ui(app)
    app.state.routes = [  # for the Allow header of a 405 (service/errors.py)
        (route.path_regex, route.methods)
        for router in routers
        for route in router.routes
        if isinstance(route, APIRoute)
    ]
    if settings.direct_dispatch:  # innermost: CORS, limits and observability wrap it
        app.add_middleware(DirectDispatch, owner=app, routes=inference_routes.router.routes)
    read_only = {route.path.rsplit("/", 1)[-1] for route in inference_routes.router.routes}
    app.add_middleware(CancelOnDisconnect, applies=inference_paths(frozenset(read_only)))
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type", REQUEST_ID_HEADER],
            expose_headers=[REQUEST_ID_HEADER, "Retry-After"],
        )
    app.add_middleware(
        PathBodyLimits,
        max_bytes=settings.max_body_bytes,
        timeout_s=settings.body_timeout_s,
        overrides=body_overrides,
    )
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app
