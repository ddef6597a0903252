"""Latent maps and decoding: a 2-D map of a dataset's posterior means (PCA, t-SNE or UMAP), and
the decoders' means for codes the caller gives (a point picked on a map, an interpolation).

Both check names, shapes and the request's cost (service/costs.py) before any work, then run in
the inference thread of the request's lane (heavy requests apart, as for the other inference
routes), never on the event loop. They are not batched: a map is one large request, and a
decode runs on codes no other request shares.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import torch
from fastapi import APIRouter, Request, Response

from core.data import MultimodalDataset
from core.models.base import MultimodalVAE
from core.models.latents import Latent
from service.batching import HEAVY, LIGHT
from service.codecs import encode_tensor
from service.costs import Cost, map_cost, output_cost
from service.deps import InferenceKey, ModelDep
from service.errors import ApiError, invalid, over_limit
from service.projection import missing_package, project
from service.registry import LoadedModel
from service.request_datasets import fit_to_model, read_dataset
from service.responses import json_response
from service.routes.inference import checked_modalities
from service.schemas import (
    DecodeRequest,
    DecodeResponse,
    LatentMapRequest,
    LatentMapResponse,
    TensorPayload,
    error_responses,
)
from service.security import KeyFirstRoute
from service.settings import Settings
from workers.settings import WorkerSettings

router = APIRouter(
    prefix="/v1/models/{name}",
    tags=["inference"],
    dependencies=[InferenceKey],
    route_class=KeyFirstRoute,
)
ERRORS = error_responses(401, 403, 404, 413, 422, 504)


# ---- checks (no torch) ----------------------------------------------------------------------
def _space(entry: LoadedModel, name: str | None) -> str:
    """The latent space `name` (default: the model's primary one), checked."""
    spaces = list(entry.model.latent_spaces)
    if name is None:
        return entry.model.primary_space
    if name not in spaces:
        raise invalid("space", f"unknown latent space {name!r}; the model has {spaces}")
    return name


def _latent_rows(latent: TensorPayload, dim: int, space: str, settings: Settings) -> int:
    """The number of codes [B, D] in `latent`, checked against the space's size and the limits."""
    shape = latent.shape
    if len(shape) != 2 or shape[1] != dim:
        raise invalid("latent.shape", f"wrong shape {shape}; the {space!r} space takes [B, {dim}]")
    if shape[0] == 0:
        raise invalid("latent.shape", "no codes given")
    if shape[0] > settings.max_batch_size:
        raise over_limit("latent.shape", shape[0], settings.max_batch_size, "MMVAE_MAX_BATCH_SIZE")
    if len(latent.data) != shape[0] * dim:
        raise invalid(
            "latent.data", f"has {len(latent.data)} values; shape {shape} needs {shape[0] * dim}"
        )
    return shape[0]


def _decode_targets(entry: LoadedModel, space: str, names: list[str] | None) -> list[str]:
    """The modalities to decode from codes of `space` (default: every one the model generates
    from them), refused when the model cannot decode them from that space alone."""
    model = entry.model
    if names is None:
        targets = [m for m in model.generated if model.decoding_error(space, [m]) is None]
        if not targets:
            reason = model.decoding_error(space, model.generated)
            raise invalid("space", f"codes of {space!r} alone decode no modality: {reason}")
        return targets
    targets = checked_modalities(entry, names, "targets")
    reason = model.decoding_error(space, targets)
    if reason is not None:
        raise invalid("targets", reason)
    return targets


def _lane(cost: Cost, settings: Settings) -> str:
    """The request's lane, once its cost is within every limit (else a 422)."""
    return HEAVY if cost.check(settings).heavy(settings) else LIGHT


async def _compute(request: Request, lane: str, work: Callable[[], Response]) -> Response:
    """`work()` in the lane's inference thread, under inference mode; 504 past the timeout."""
    app = request.app
    timeout = app.state.settings.request_timeout_s

    def run() -> Response:
        with torch.inference_mode():
            return work()

    future = asyncio.get_running_loop().run_in_executor(app.state.executors[lane], run)
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise ApiError(
            504,
            "timeout",
            f"inference took longer than {timeout:g} s (setting MMVAE_REQUEST_TIMEOUT_S)",
        ) from None


# ---- datasets -------------------------------------------------------------------------------
def _job_settings(request: Request) -> WorkerSettings:
    jobs = getattr(request.app.state, "jobs", None)
    return jobs.settings if jobs is not None else request.app.state.settings.job_settings()


def _mapped(
    dataset: MultimodalDataset, n: int, entry: LoadedModel
) -> tuple[list[int], MultimodalDataset]:
    """`n` rows spread evenly over the dataset (all of them when it has no more): their row
    numbers, and those rows fitted to the model's modalities."""
    total = len(dataset)
    if total == 0:
        raise invalid("dataset", "the dataset has no rows")
    n = min(n, total)
    rows = torch.arange(n) * total // n
    return rows.tolist(), fit_to_model(dataset.subset(rows), entry)


# ---- model work (in the inference thread) ---------------------------------------------------
def _means(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: list[str] | None,
    space: str,
    chunk: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Posterior means [n, D] of `space`, encoded `chunk` rows at a time."""
    batch = dataset.batch()
    try:
        model.availability(model.clean(batch), given)  # refused for the whole map, not a chunk
    except ValueError as err:
        raise ApiError(422, "invalid_input", str(err), "given") from None
    parts = []
    for start in range(0, batch.size, chunk):
        part = batch.index(slice(start, start + chunk))
        latent = model.encode(part, given, n_samples=1, mean=True, generator=generator)
        parts.append(latent.codes[space][0].float())
    return torch.cat(parts)


# ---- routes ---------------------------------------------------------------------------------
@router.post("/latent-map", response_model=LatentMapResponse, responses=ERRORS)
async def latent_map(body: LatentMapRequest, entry: ModelDep, request: Request) -> Any:
    """A 2-D map of the posterior means of `space` for `n` rows of a dataset (spread evenly
    over it), by PCA, t-SNE or UMAP, with the rows' labels and the means themselves (to decode
    or interpolate); the same map for the same seed (default 0)."""
    settings: Settings = request.app.state.settings
    model = entry.model
    if body.n > settings.max_map_points:
        raise over_limit("n", body.n, settings.max_map_points, "MMVAE_MAX_MAP_POINTS")
    reason = missing_package(body.method)
    if reason is not None:
        raise invalid("method", reason)
    space = _space(entry, body.space)
    given = None if body.given is None else checked_modalities(entry, body.given, "given")
    dim = model.latent_spaces[space].dim
    passes = model.inference_passes(given or model.names)
    lane = _lane(map_cost(body.n, dim, passes, entry.parameters, body.method), settings)
    jobs = _job_settings(request)
    raw = await asyncio.to_thread(read_dataset, body.dataset, settings.max_body_bytes, jobs)
    rows, dataset = await asyncio.to_thread(_mapped, raw, body.n, entry)
    seed = body.seed or 0

    def work() -> Response:
        generator = torch.Generator().manual_seed(seed)
        means = _means(model, dataset, given, space, settings.max_batch_size, generator)
        points, shares = project(means, body.method, seed % 2**32, settings.torch_threads)
        labels = dataset.labels
        return json_response(
            LatentMapResponse(
                model=entry.name,
                method=body.method,
                space=space,
                n=len(dataset),
                rows=rows,
                points=points.tolist(),
                labels=[None] * len(dataset) if labels is None else labels.tolist(),
                means=TensorPayload(shape=list(means.shape), data=means.flatten().tolist()),
                explained_variance=None if shares is None else shares.tolist(),
            )
        )

    return await _compute(request, lane, work)


@router.post("/decode", response_model=DecodeResponse, responses=ERRORS)
async def decode(body: DecodeRequest, entry: ModelDep, request: Request) -> Any:
    """The decoders' means [B, *shape] for codes [B, D] of `space` (probabilities for a
    categorical modality, with `classes`); the other latent spaces the decoders read are drawn
    from their priors, with `seed`."""
    settings: Settings = request.app.state.settings
    model = entry.model
    space = _space(entry, body.space)
    dim = model.latent_spaces[space].dim
    rows = _latent_rows(body.latent, dim, space, settings)
    targets = _decode_targets(entry, space, body.targets)
    scale = body.png_scale if body.encoding == "png" else None
    specs = [entry.specs[m] for m in targets]
    lane = _lane(output_cost(specs, rows, rows, entry.parameters, scale, "latent.shape"), settings)

    def work() -> Response:
        codes = torch.tensor(body.latent.data, dtype=torch.float32).view(rows, dim)
        if not bool(torch.isfinite(codes).all()):
            raise invalid("latent.data", "contains NaN or infinite values")
        generator = None if body.seed is None else torch.Generator().manual_seed(body.seed)
        latent = Latent({space: codes.unsqueeze(0)}, primary=model.primary_space)
        means = model.decode_mean(latent, targets, generator)
        outputs = {
            m: encode_tensor(x[0], entry.specs[m], body.encoding, body.png_scale)
            for m, x in means.items()
        }
        return json_response(DecodeResponse(model=entry.name, outputs=outputs, seed=body.seed))

    return await _compute(request, lane, work)
