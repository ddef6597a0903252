"""Jobs: submit (train | augment | evaluate), list, inspect, cancel, artifacts, progress events.

Every route needs the admin key when keys are configured. Submission validates the spec fully
(422 otherwise, nothing queued) and answers 202 with the job; an `Idempotency-Key` header makes
a retried submission return the first job. Artifacts are only files the job listed.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse

from service.deps import AdminKey
from service.errors import ApiError, not_found
from service.job_schemas import JobList, JobRecord, link_to
from service.jobs_client import BrokerUnavailable, JobsClient, public
from service.schemas import error_responses
from service.security import KeyFirstRoute
from workers.jobs import TERMINAL, JobNotFound
from workers.specs import SpecError

router = APIRouter(
    route_class=KeyFirstRoute,
    prefix="/v1/jobs",
    tags=["jobs"],
    dependencies=[AdminKey],
    responses=error_responses(401, 403, 404, 409, 413, 422, 503),
)
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="job id")]
SSE_POLL_S = 0.5
SSE_MAX_S = 6 * 3600
SSE_KEEPALIVE_S = 15.0

EXAMPLE = {
    "type": "train",
    "model": {"model_type": "mvae", "latent_dim": 16},
    "dataset": "digits",
    "trainer": {"epochs": 5},
}


def _record(model: type) -> dict[int | str, dict[str, Any]]:
    """Documents the 200 body (the route returns the dict itself: a record field the model
    lacks is caught by the tests, not turned into a 500 here)."""
    return {200: {"model": model, "description": "see the schema"}}


def _jobs(request: Request) -> JobsClient:
    return request.app.state.jobs


def _get(request: Request, job_id: str) -> dict[str, Any]:
    job = _jobs(request).store.get(job_id)
    if job is None:
        raise not_found("job", job_id, "id")
    return job


@router.post(
    "",
    status_code=202,
    summary="submit a job; 202 with its id and state",
    response_model=None,
    responses={
        202: {
            "model": JobRecord,
            "description": "the queued job (or, replayed, the first)",
            "links": {
                "GetJob": link_to("/v1/jobs/{job_id}", "get", "job_id"),
                "CancelJob": link_to("/v1/jobs/{job_id}/cancel", "post", "job_id"),
            },
        }
    },
)
def submit(
    request: Request,
    spec: Annotated[dict[str, Any], Body(examples=[EXAMPLE])],
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    try:
        job, created = _jobs(request).submit(spec, idempotency_key)
    except SpecError as err:
        status = 409 if err.code == "conflict" else 422
        raise ApiError(status, err.code, err.message, err.field) from None
    except BrokerUnavailable as err:
        raise ApiError(503, "broker_unavailable", str(err), None, {"Retry-After": "5"}) from None
    headers = {"Location": f"/v1/jobs/{job['id']}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(public(job), status_code=202, headers=headers)


@router.get("", summary="jobs, newest first", response_model=None, responses=_record(JobList))
def list_jobs(
    request: Request,
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
    type: Literal["train", "augment", "evaluate"] | None = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
) -> dict[str, Any]:
    jobs = _jobs(request).store.list(state=state, kind=type, limit=limit)
    return {"jobs": [public(j) for j in jobs]}


@router.get(
    "/{job_id}",
    summary="state, progress (epoch, step, metrics, ETA), error, artifacts",
    response_model=None,
    responses=_record(JobRecord),
)
def get_job(request: Request, job_id: JobId) -> dict[str, Any]:
    return public(_get(request, job_id))


@router.post(
    "/{job_id}/cancel",
    status_code=202,
    summary="cancel cooperatively",
    response_model=None,
    responses={202: {"model": JobRecord, "description": "the job, cancel requested"}},
)
def cancel(request: Request, job_id: JobId) -> dict[str, Any]:
    try:
        job = _jobs(request).cancel(job_id)
    except JobNotFound:
        raise not_found("job", job_id, "id") from None
    if job["state"] in TERMINAL and not job.get("cancel_requested"):
        raise ApiError(409, "conflict", f"job {job_id}: already {job['state']}", "id")
    return public(job)


@router.get("/{job_id}/artifacts/{name:path}", summary="download one of the job's artifacts")
def artifact(request: Request, job_id: JobId, name: str) -> FileResponse:
    job = _get(request, job_id)
    if name not in job.get("artifacts", []) or ".." in name.split("/") or name.startswith("/"):
        raise not_found("artifact", name, "name")
    folder = _jobs(request).store.job_dir(job_id).resolve()
    path = (folder / name).resolve()
    if not path.is_relative_to(folder) or not path.is_file():
        raise not_found("artifact", name, "name")
    return FileResponse(path, filename=path.name)


async def _events(request: Request, job_id: str) -> AsyncIterator[str]:
    """`data: {job}` whenever the record changes, until a terminal state (or SSE_MAX_S)."""
    store = _jobs(request).store
    last, started, quiet = None, time.monotonic(), time.monotonic()
    while time.monotonic() - started < SSE_MAX_S:
        if await request.is_disconnected():
            return
        job = await asyncio.to_thread(store.get, job_id)
        if job is None:
            return
        view = public(job)
        view.pop("age_s")
        text = json.dumps(view)
        if text != last:
            last, quiet = text, time.monotonic()
            yield f"event: {job['state']}\ndata: {text}\n\n"
        elif time.monotonic() - quiet > SSE_KEEPALIVE_S:
            quiet = time.monotonic()
            yield ": keep-alive\n\n"
        if job["state"] in TERMINAL:
            return
        await asyncio.sleep(SSE_POLL_S)


@router.get(
    "/{job_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
    summary="server-sent events: the job record on every change, until it finishes",
)
def events(request: Request, job_id: JobId) -> StreamingResponse:
    _get(request, job_id)
    return StreamingResponse(
        _events(request, job_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
