"""Synchronous evaluation (`core.metrics.evaluate`) on a built-in or uploaded dataset, up to
MMVAE_MAX_EVAL_SAMPLES samples; larger datasets are pointed to an evaluation job."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from core.data import MultimodalDataset
from service.deps import InferenceKey, ModelDep, SettingsDep
from service.errors import ApiError, invalid
from service.registry import LoadedModel
from service.request_datasets import fit_to_model, read_dataset
from service.schemas import ErrorBody, EvaluateRequest, EvaluateResponse
from service.security import KeyFirstRoute

router = APIRouter(
    prefix="/v1/models/{name}",
    tags=["inference"],
    dependencies=[InferenceKey],
    route_class=KeyFirstRoute,
)
SYNC_METRICS = ("likelihood", "coherence", "reconstruction", "clustering", "fid")
DEFAULT_METRICS = ("likelihood", "coherence", "reconstruction")
EVAL_K = 100
EVALUATION_JOB_HINT = '{"type": "evaluate", "model": "<stored model name>", "dataset": "<dataset>"}'


@router.post(
    "/evaluate",
    response_model=EvaluateResponse,
    responses={code: {"model": ErrorBody} for code in (401, 403, 404, 413, 422)},
)
async def evaluate(body: EvaluateRequest, entry: ModelDep, settings: SettingsDep) -> Any:
    """Metrics (likelihood, coherence, reconstruction, clustering, fid) of the model on a
    dataset; synchronous up to MMVAE_MAX_EVAL_SAMPLES samples."""
    metrics = list(body.metrics) if body.metrics is not None else list(DEFAULT_METRICS)
    for i, m in enumerate(metrics):
        if m not in SYNC_METRICS:
            raise invalid(f"metrics[{i}]", f"unknown metric {m!r}; known: {list(SYNC_METRICS)}")
    if not metrics:
        raise invalid("metrics", "give at least one metric (or leave it out for the default)")
    raw = await asyncio.to_thread(read_dataset, body.dataset, settings.max_body_bytes)
    dataset = fit_to_model(raw, entry)
    if len(dataset) > settings.max_eval_samples:
        raise ApiError(
            413,
            "use_evaluation_job",
            f"dataset: {len(dataset)} samples exceeds the synchronous limit of "
            f"{settings.max_eval_samples} (setting MMVAE_MAX_EVAL_SAMPLES); submit an evaluation "
            f"job instead: POST /v1/jobs {EVALUATION_JOB_HINT}",
            "dataset",
        )
    report = await asyncio.to_thread(_run, entry, dataset, metrics, body.seed or 0)
    return EvaluateResponse(model=entry.name, n_samples=len(dataset), metrics=report)


def _run(entry: LoadedModel, dataset: MultimodalDataset, metrics: list[str], seed: int) -> Any:
    from core.metrics import evaluate

    try:
        return evaluate(
            entry.model,
            dataset,
            metrics=metrics,
            k=EVAL_K,
            seed=seed,
            n_samples=min(len(dataset), 500),
            sampler=getattr(entry.model, "sampler", None),
        )
    except (FileNotFoundError, KeyError) as err:
        raise invalid("metrics", str(err)) from None
