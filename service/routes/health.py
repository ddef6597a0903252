"""Liveness (`/healthz`), readiness (`/readyz`) and Prometheus metrics (`/metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.deps import MetricsDep, RegistryDep
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="the process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready yet"}},
    summary="every configured model loaded and warmed up; store (and broker) reachable",
)
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = dict(request.app.state.preload_status)
    for name, check in request.app.state.readiness_checks.items():
        try:
            problem = check()
        except Exception as err:
            problem = f"{type(err).__name__}: {err}"
        checks[name] = problem or "ok"
    ready = all(v == "ok" for v in checks.values())
    body = Readiness(ready=ready, checks=checks).model_dump()
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
    summary="Prometheus metrics",
)
async def metrics(metrics: MetricsDep, registry: RegistryDep) -> Response:
    entries = registry.list()
    metrics.models_loaded.set(len(entries))
    metrics.model_info.clear()
    for entry in entries:
        metrics.model_info.labels(entry.name, entry.model.model_type).set(1)
    return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")
