"""Inference on a loaded model: encode, generate, reconstruct, sample, log-likelihood, evaluate.

Requests are decoded and checked against the limits here, then queued on the model's batcher for
the operation; results come back per request and are encoded as JSON, a PNG grid or an .npz.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import APIRouter, Request, Response
from torch import Tensor

from core.data.batch import Batch
from service.codecs import decode_inputs, encode_tensor
from service.deps import InferenceKey, ModelDep, SettingsDep
from service.errors import invalid, over_limit
from service.inference import Work, group_key
from service.registry import LoadedModel
from service.responses import (
    BINARY_RESPONSES,
    json_response,
    npz_response,
    png_response,
    wanted,
)
from service.schemas import (
    CrossReconstruction,
    EncodeRequest,
    EncodeResponse,
    GenerateRequest,
    GenerateResponse,
    LogLikelihoodRequest,
    LogLikelihoodResponse,
    ReconstructRequest,
    ReconstructResponse,
    SampleRequest,
    SampleResponse,
    error_responses,
)
from service.settings import Settings

router = APIRouter(prefix="/v1/models/{name}", tags=["inference"], dependencies=[InferenceKey])
ERRORS = error_responses(401, 403, 404, 413, 422, 503, 504)
WITH_BINARY = {**ERRORS, **BINARY_RESPONSES}


# ---- helpers --------------------------------------------------------------------------------
def _inputs(entry: LoadedModel, inputs: dict, settings: Settings) -> Batch:
    return decode_inputs(
        inputs, entry.model.config.modalities, settings.max_batch_size, settings.max_image_pixels
    )


def _modalities(entry: LoadedModel, names: list[str] | None, field: str) -> list[str]:
    """Checked modality names (default: every modality), without duplicates."""
    known = entry.model.names
    if names is None:
        return list(known)
    if not names:
        raise invalid(field, "give at least one modality (or leave it out for all)")
    for i, m in enumerate(names):
        if m not in known:
            raise invalid(f"{field}[{i}]", f"unknown modality {m!r}; the model has {known}")
    return list(dict.fromkeys(names))


def _check_samples(n: int, rows: int, settings: Settings, field: str = "n_samples") -> None:
    if n > settings.max_n_samples:
        raise over_limit(field, n, settings.max_n_samples, "MMVAE_MAX_N_SAMPLES")
    if n * rows > settings.max_total_outputs:
        raise over_limit(
            f"{field} × batch size", n * rows, settings.max_total_outputs, "MMVAE_MAX_TOTAL_OUTPUTS"
        )


async def _run(
    request: Request,
    entry: LoadedModel,
    op: str,
    params: dict[str, Any],
    batch: Batch | None,
    rows: int,
    seed: int | None,
) -> dict[str, Tensor]:
    """Queue the request on the (model, op) batcher and wait for its share of the results."""
    batchers = request.app.state.batchers
    settings: Settings = request.app.state.settings
    key = (id(entry.model), group_key(op, params, seed, object()))
    work = Work(entry.model, params, batch, rows, seed)
    return await batchers.get(entry.name, op).submit(key, work, rows, settings.request_timeout_s)


def _specs(entry: LoadedModel) -> dict:
    return {m.name: m for m in entry.model.config.modalities}


def _encode_outputs(
    entry: LoadedModel, arrays: dict[str, Tensor], encoding: Any, png_scale: int
) -> dict[str, Any]:
    """Each output tensor in the requested encoding (tensor, nested lists or PNG)."""
    specs = _specs(entry)
    return {m: encode_tensor(x, specs[m], encoding, png_scale) for m, x in arrays.items()}


def _binary(
    request: Request, entry: LoadedModel, arrays: dict[str, Tensor], scale: int, op: str
) -> Response | None:
    """The PNG grid or .npz response when the Accept header asks for one, else None."""
    kind = wanted(request)
    if kind == "npz":
        return npz_response(arrays, f"{entry.name}-{op}")
    if kind == "png":
        specs = _specs(entry)
        images = {}
        for name, x in arrays.items():
            spec = specs.get(name.split(".")[-1])
            if spec is not None and spec.kind == "image" and not name.startswith("cross."):
                images[name] = x if x.ndim == 5 else x.unsqueeze(0)
        return png_response(images, scale)
    return None


# ---- routes ---------------------------------------------------------------------------------
@router.post("/encode", response_model=EncodeResponse, responses=WITH_BINARY)
async def encode(
    body: EncodeRequest, entry: ModelDep, settings: SettingsDep, request: Request
) -> Any:
    """Posterior mean and standard deviation [B, D] from the given modalities, and optionally
    `n_samples` latent draws [S, B, D]."""
    batch = _inputs(entry, body.inputs, settings)
    _check_samples(body.n_samples, batch.size, settings)
    params = {"n_samples": body.n_samples}
    out = await _run(request, entry, "encode", params, batch, batch.size, body.seed)
    binary = _binary(request, entry, out, body.png_scale, "encode")
    if binary is not None:
        return binary
    return json_response(
        EncodeResponse(
            model=entry.name,
            mean=encode_tensor(out["mean"], None, body.encoding),
            scale=encode_tensor(out["scale"], None, body.encoding),
            samples=encode_tensor(out["samples"], None, body.encoding)
            if "samples" in out
            else None,
        )
    )


@router.post("/generate", response_model=GenerateResponse, responses=WITH_BINARY)
async def generate(
    body: GenerateRequest, entry: ModelDep, settings: SettingsDep, request: Request
) -> Any:
    """Cross-modal generation: from the modalities each sample has, `n_samples` draws of each
    target [S, B, *shape]."""
    batch = _inputs(entry, body.inputs, settings)
    targets = _modalities(entry, body.targets, "targets")
    _check_samples(body.n_samples, batch.size, settings)
    params = {"targets": targets, "n_samples": body.n_samples, "mean_latent": body.mean_latent}
    out = await _run(request, entry, "generate", params, batch, batch.size, body.seed)
    binary = _binary(request, entry, out, body.png_scale, "generate")
    if binary is not None:
        return binary
    outputs = _encode_outputs(entry, out, body.encoding, body.png_scale)
    return json_response(GenerateResponse(model=entry.name, outputs=outputs, seed=body.seed))


@router.post("/reconstruct", response_model=ReconstructResponse, responses=WITH_BINARY)
async def reconstruct(
    body: ReconstructRequest, entry: ModelDep, settings: SettingsDep, request: Request
) -> Any:
    """Self-reconstruction from every input modality, and cross-reconstruction from each input
    modality alone (for the samples that have it)."""
    batch = _inputs(entry, body.inputs, settings)
    targets = _modalities(entry, body.targets, "targets")
    _check_samples(body.n_samples, batch.size, settings)
    params = {
        "targets": targets,
        "n_samples": body.n_samples,
        "mean_latent": body.mean_latent,
        "cross": body.cross,
    }
    out = await _run(request, entry, "reconstruct", params, batch, batch.size, body.seed)
    binary = _binary(request, entry, out, body.png_scale, "reconstruct")
    if binary is not None:
        return binary
    specs = _specs(entry)
    enc = body.encoding, body.png_scale
    rec_out = {name[4:]: x for name, x in out.items() if name.startswith("rec.")}
    recs = _encode_outputs(entry, rec_out, *enc)
    cross: dict[str, CrossReconstruction] = {}
    for source in entry.model.names:
        mask = out.get(f"cross.{source}")
        if mask is None or not bool(mask.bool().any()):
            continue
        rows = mask.bool().nonzero().flatten()
        cross[source] = CrossReconstruction(
            rows=rows.tolist(),
            outputs={
                m: encode_tensor(out[f"cross.{source}.{m}"][:, rows], specs[m], *enc)
                for m in targets
            },
        )
    return json_response(
        ReconstructResponse(model=entry.name, reconstructions=recs, cross=cross, seed=body.seed)
    )


@router.post("/sample", response_model=SampleResponse, responses=WITH_BINARY)
async def sample(
    body: SampleRequest, entry: ModelDep, settings: SettingsDep, request: Request
) -> Any:
    """Unconditional synthetic samples [n, *shape], latents from the prior or the model's fitted
    sampler (see `samplers` in the model's description)."""
    if body.n > settings.max_batch_size:
        raise over_limit("n", body.n, settings.max_batch_size, "MMVAE_MAX_BATCH_SIZE")
    if body.sampler not in entry.samplers:
        raise invalid(
            "sampler", f"{body.sampler!r} is not available; this model has {entry.samplers}"
        )
    modalities = _modalities(entry, body.modalities, "modalities")
    params = {"sampler": body.sampler, "modalities": modalities}
    out = await _run(request, entry, "sample", params, None, body.n, body.seed)
    binary = _binary(request, entry, out, body.png_scale, "sample")
    if binary is not None:
        return binary
    outputs = _encode_outputs(entry, out, body.encoding, body.png_scale)
    return json_response(
        SampleResponse(model=entry.name, sampler=body.sampler, outputs=outputs, seed=body.seed)
    )


@router.post("/log-likelihood", response_model=LogLikelihoodResponse, responses=ERRORS)
async def log_likelihood(
    body: LogLikelihoodRequest, entry: ModelDep, settings: SettingsDep, request: Request
) -> Any:
    """Importance-sampled log p(inputs) with K samples, or log p(other inputs | given)."""
    batch = _inputs(entry, body.inputs, settings)
    if body.k > settings.max_k:
        raise over_limit("k", body.k, settings.max_k, "MMVAE_MAX_K")
    given = targets = None
    if body.given is not None:
        given = _modalities(entry, body.given, "given")
        have = [m for m in given if m in body.inputs]
        if not have:
            raise invalid("given", f"none of {given} is among the inputs {list(body.inputs)}")
        seen = Batch.mask_matrix(batch, given).any(0)
        if not bool(seen.all()):
            row = int((~seen).nonzero()[0])
            raise invalid("given", f"sample {row} observes none of the given modalities {given}")
        targets = [m for m in body.inputs if m not in given]
        if not targets:
            raise invalid("given", "every input is given: nothing left to score")
    params = {"k": body.k, "given": given}
    out = await _run(request, entry, "log-likelihood", params, batch, batch.size, body.seed)
    values = out["log_likelihood"].tolist()
    if not all(math.isfinite(v) for v in values):
        raise invalid("inputs", "the log-likelihood is not finite for these inputs")
    return json_response(
        LogLikelihoodResponse(
            model=entry.name, log_likelihood=values, k=body.k, given=given, targets=targets
        )
    )
