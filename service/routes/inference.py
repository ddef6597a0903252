"""Inference on a loaded model: encode, generate, reconstruct, sample, log-likelihood, evaluate.

Each route checks what it can without torch (names, counts, limits), then queues the request
on the model's batcher for the operation with two functions that run in the inference thread:
one decodes its inputs to tensors, one turns its outputs into the answer (JSON body, PNG grid or
.npz). The event loop thus never calls torch (see service/inference.py for why).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel
from torch import Tensor

from core.data.batch import Batch
from service.batching import HEAVY, LIGHT
from service.codecs import decode_inputs, encode_tensor, input_rows, to_data_units
from service.costs import Cost, output_cost
from service.deps import InferenceKey, ModelDep
from service.errors import invalid, over_limit
from service.fast_route import FastJSONRoute
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
    LatentOut,
    LogLikelihoodRequest,
    LogLikelihoodResponse,
    ReconstructRequest,
    ReconstructResponse,
    SampleRequest,
    SampleResponse,
    error_responses,
)
from service.settings import Settings

router = APIRouter(
    prefix="/v1/models/{name}",
    tags=["inference"],
    dependencies=[InferenceKey],
    route_class=FastJSONRoute,
)
ERRORS = error_responses(401, 403, 404, 413, 422, 503, 504)
WITH_BINARY = {**ERRORS, **BINARY_RESPONSES}


# ---- helpers --------------------------------------------------------------------------------
def _rows(entry: LoadedModel, inputs: dict, settings: Settings) -> int:
    return input_rows(inputs, entry.model.config.modalities, settings.max_batch_size)


def _decoder(
    entry: LoadedModel, inputs: dict, settings: Settings, rows: int
) -> Callable[[], Batch]:
    """Builds the request's `Batch` when called (in the inference thread); `rows` from `_rows`."""
    specs, max_pixels = entry.model.config.modalities, settings.max_image_pixels
    return lambda: decode_inputs(inputs, specs, settings.max_batch_size, max_pixels, rows)


def checked_modalities(entry: LoadedModel, names: list[str] | None, field: str) -> list[str]:
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


def _targets(entry: LoadedModel, names: list[str] | None, inputs: list[str]) -> list[str]:
    """Checked targets (default: every modality the model generates), refused before any work
    when the model cannot generate them from these inputs (a conditional model)."""
    if names is None:
        targets = list(entry.model.generated)
    else:
        targets = checked_modalities(entry, names, "targets")
    reason = entry.model.generation_error(inputs, targets)
    if reason is not None:
        raise invalid("targets", reason)
    return targets


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
    rows: int,
    seed: int | None,
    finish: Callable[[dict[str, Tensor]], Any],
    cost: Cost,
    inputs: dict[str, Any] | None = None,
    decode: Callable[[], Batch] | None = None,
) -> Any:
    """Check the request's `cost`, queue it on the (model, op) batcher of its lane and wait
    for its finished share. `inputs` (counted by `_rows`) are decoded by `_decoder` and may be
    decoded together with other requests' (`Work.inputs`); a route that checks more while
    decoding passes its own `decode` instead."""
    app = request.app
    settings: Settings = app.state.settings
    lane = HEAVY if cost.check(settings).heavy(settings) else LIGHT
    if inputs is not None:
        decode = _decoder(entry, inputs, settings, rows)
    key = (id(entry.model), group_key(op, params, seed, object()))
    work = Work(entry.model, params, rows, seed, decode, finish, inputs)
    return await app.state.batchers.get(entry.name, op, lane).submit(
        key, work, rows, settings.request_timeout_s
    )


def _png_scale(request: Request, encoding: str, scale: int) -> int | None:
    """The PNG upscaling the answer renders images at, None when it renders none."""
    return scale if encoding == "png" or wanted(request) == "png" else None


def _encode_outputs(
    entry: LoadedModel, arrays: dict[str, Tensor], encoding: Any, png_scale: int
) -> dict[str, Any]:
    """Each output tensor in the requested encoding (tensor, nested lists or PNG)."""
    specs = entry.specs
    return {m: encode_tensor(x, specs[m], encoding, png_scale) for m, x in arrays.items()}


def _finisher(
    request: Request,
    entry: LoadedModel,
    op: str,
    scale: int,
    as_json: Callable[[dict[str, Tensor]], Any],
) -> Callable[[dict[str, Tensor]], Any]:
    """What the inference thread makes of this request's outputs: the PNG grid or .npz
    `Response` when the Accept header asks for one, else `as_json(outputs)`."""
    kind = wanted(request)

    def data_units(out: dict[str, Tensor]) -> dict[str, Tensor]:
        return {n: to_data_units(x, entry.specs.get(n.split(".")[-1])) for n, x in out.items()}

    if kind == "npz":
        return lambda out: npz_response(data_units(out), f"{entry.name}-{op}")
    if kind == "png":
        return lambda out: png_response(_images(entry, data_units(out)), scale)
    return as_json


def _images(entry: LoadedModel, arrays: dict[str, Tensor]) -> dict[str, Tensor]:
    """The image outputs as [S, B, C, H, W] (cross-reconstructions left out)."""
    images = {}
    for name, x in arrays.items():
        spec = entry.specs.get(name.split(".")[-1])
        if spec is not None and spec.kind == "image" and not name.startswith("cross."):
            images[name] = x if x.ndim == 5 else x.unsqueeze(0)
    return images


# ---- routes ---------------------------------------------------------------------------------
@router.post("/encode", response_model=EncodeResponse, responses=WITH_BINARY)
async def encode(body: EncodeRequest, entry: ModelDep, request: Request) -> Any:
    """Posterior mean and standard deviation [B, D] from the given modalities, and optionally
    `n_samples` latent draws [S, B, D], for every latent space of the model (`spaces`) and, at
    the top level, for its primary space."""
    settings: Settings = request.app.state.settings
    rows = _rows(entry, body.inputs, settings)
    _check_samples(body.n_samples, rows, settings)

    def as_json(out: dict[str, Tensor]) -> EncodeResponse:
        def tensors(prefix: str) -> dict[str, Any]:
            found = {k: out.get(f"{prefix}{k}") for k in ("mean", "scale", "samples")}
            return {
                k: None if x is None else encode_tensor(x, None, body.encoding)
                for k, x in found.items()
            }

        spaces = {
            space: LatentOut(**tensors(f"spaces.{space}."))
            for space in entry.model.latent_spaces
            if f"spaces.{space}.mean" in out
        }
        primary = entry.model.primary_space
        clusters = out.get("clusters")
        found = None
        if clusters is not None:
            found = encode_tensor(clusters, None, body.encoding)
            found.classes = clusters.argmax(-1).tolist()
        return EncodeResponse(
            model=entry.name, space=primary, spaces=spaces, clusters=found, **tensors("")
        )

    finish = _finisher(request, entry, "encode", body.png_scale, as_json)
    params = {"n_samples": body.n_samples}
    draws = rows * max(body.n_samples, 1)
    latent = sum(space.dim for space in entry.model.latent_spaces.values())
    values = rows * latent * (2 + body.n_samples)
    passes = draws * entry.model.inference_passes(list(body.inputs))
    cost = Cost(values, 0, passes * entry.parameters, "n_samples")
    out = await _run(request, entry, "encode", params, rows, body.seed, finish, cost, body.inputs)
    return _respond(out)


@router.post("/generate", response_model=GenerateResponse, responses=WITH_BINARY)
async def generate(body: GenerateRequest, entry: ModelDep, request: Request) -> Any:
    """Cross-modal generation: from the modalities each sample has, `n_samples` draws of each
    target [S, B, *shape]."""
    settings: Settings = request.app.state.settings
    rows = _rows(entry, body.inputs, settings)
    targets = _targets(entry, body.targets, list(body.inputs))
    _check_samples(body.n_samples, rows, settings)

    def as_json(out: dict[str, Tensor]) -> GenerateResponse:
        outputs = _encode_outputs(entry, out, body.encoding, body.png_scale)
        return GenerateResponse(model=entry.name, outputs=outputs, seed=body.seed)

    finish = _finisher(request, entry, "generate", body.png_scale, as_json)
    params = {"targets": targets, "n_samples": body.n_samples, "mean_latent": body.mean_latent}
    draws = rows * body.n_samples
    passes = draws * entry.model.inference_passes(list(body.inputs))
    scale = _png_scale(request, body.encoding, body.png_scale)
    specs = [entry.specs[m] for m in targets]
    cost = output_cost(specs, draws, passes, entry.parameters, scale, "n_samples")
    out = await _run(request, entry, "generate", params, rows, body.seed, finish, cost, body.inputs)
    return _respond(out)


@router.post("/reconstruct", response_model=ReconstructResponse, responses=WITH_BINARY)
async def reconstruct(body: ReconstructRequest, entry: ModelDep, request: Request) -> Any:
    """Self-reconstruction from every input modality, and cross-reconstruction from each input
    modality alone (for the samples that have it)."""
    settings: Settings = request.app.state.settings
    rows = _rows(entry, body.inputs, settings)
    targets = _targets(entry, body.targets, list(body.inputs))
    _check_samples(body.n_samples, rows, settings)
    enc = body.encoding, body.png_scale

    def as_json(out: dict[str, Tensor]) -> ReconstructResponse:
        rec_out = {name[4:]: x for name, x in out.items() if name.startswith("rec.")}
        cross: dict[str, CrossReconstruction] = {}
        for source in entry.model.names:
            mask = out.get(f"cross.{source}")
            if mask is None or not bool(mask.bool().any()):
                continue
            picked = mask.bool().nonzero().flatten()
            cross[source] = CrossReconstruction(
                rows=picked.tolist(),
                outputs={
                    m: encode_tensor(out[f"cross.{source}.{m}"][:, picked], entry.specs[m], *enc)
                    for m in targets
                },
            )
        recs = _encode_outputs(entry, rec_out, *enc)
        return ReconstructResponse(
            model=entry.name, reconstructions=recs, cross=cross, seed=body.seed
        )

    finish = _finisher(request, entry, "reconstruct", body.png_scale, as_json)
    params = {
        "targets": targets,
        "n_samples": body.n_samples,
        "mean_latent": body.mean_latent,
        "cross": body.cross,
    }
    sources = 1 + (len(body.inputs) if body.cross else 0)  # all inputs, then each alone
    draws = rows * body.n_samples * sources
    passes = draws * entry.model.inference_passes(list(body.inputs))
    scale = _png_scale(request, body.encoding, body.png_scale)
    specs = [entry.specs[m] for m in targets]
    cost = output_cost(specs, draws, passes, entry.parameters, scale, "n_samples")
    out = await _run(
        request, entry, "reconstruct", params, rows, body.seed, finish, cost, body.inputs
    )
    return _respond(out)


@router.post("/sample", response_model=SampleResponse, responses=WITH_BINARY)
async def sample(body: SampleRequest, entry: ModelDep, request: Request) -> Any:
    """Unconditional synthetic samples [n, *shape], latents from the prior or the model's fitted
    sampler (see `samplers` in the model's description)."""
    settings: Settings = request.app.state.settings
    if body.n > settings.max_batch_size:
        raise over_limit("n", body.n, settings.max_batch_size, "MMVAE_MAX_BATCH_SIZE")
    if not entry.samplers:
        raise invalid("sampler", str(entry.model.sampling_error(entry.model.sampler)))
    if body.sampler not in entry.samplers:
        raise invalid(
            "sampler", f"{body.sampler!r} is not available; this model has {entry.samplers}"
        )
    modalities = checked_modalities(entry, body.modalities, "modalities")

    def as_json(out: dict[str, Tensor]) -> SampleResponse:
        outputs = _encode_outputs(entry, out, body.encoding, body.png_scale)
        return SampleResponse(
            model=entry.name, sampler=body.sampler, outputs=outputs, seed=body.seed
        )

    finish = _finisher(request, entry, "sample", body.png_scale, as_json)
    params = {"sampler": body.sampler, "modalities": modalities}
    scale = _png_scale(request, body.encoding, body.png_scale)
    specs = [entry.specs[m] for m in modalities]
    cost = output_cost(specs, body.n, body.n, entry.parameters, scale, "n")
    return _respond(await _run(request, entry, "sample", params, body.n, body.seed, finish, cost))


@router.post("/log-likelihood", response_model=LogLikelihoodResponse, responses=ERRORS)
async def log_likelihood(body: LogLikelihoodRequest, entry: ModelDep, request: Request) -> Any:
    """Importance-sampled log p(inputs) with K samples, or log p(other inputs | given)."""
    settings: Settings = request.app.state.settings
    if entry.model.likelihood_error is not None:
        raise invalid("model", entry.model.likelihood_error)
    rows = _rows(entry, body.inputs, settings)
    if body.k > settings.max_k:
        raise over_limit("k", body.k, settings.max_k, "MMVAE_MAX_K")
    given = targets = None
    if body.given is not None:
        given = checked_modalities(entry, body.given, "given")
        if not any(m in body.inputs for m in given):
            raise invalid("given", f"none of {given} is among the inputs {list(body.inputs)}")
        targets = [m for m in body.inputs if m not in given]
        if not targets:
            raise invalid("given", "every input is given: nothing left to score")
    decode_all = _decoder(entry, body.inputs, settings, rows)

    def decode() -> Batch:
        batch = decode_all()
        if given is not None:
            seen = Batch.mask_matrix(batch, given).any(0)
            if not bool(seen.all()):
                row = int((~seen).nonzero()[0])
                raise invalid(
                    "given", f"sample {row} observes none of the given modalities {given}"
                )
        return batch

    def as_json(out: dict[str, Tensor]) -> LogLikelihoodResponse:
        values = out["log_likelihood"].tolist()
        if not all(math.isfinite(v) for v in values):
            raise invalid("inputs", "the log-likelihood is not finite for these inputs")
        return LogLikelihoodResponse(
            model=entry.name, log_likelihood=values, k=body.k, given=given, targets=targets
        )

    params = {"k": body.k, "given": given}
    passes = rows * body.k * (1 if given is None else 2)  # conditional: joint and marginal
    passes *= entry.model.inference_passes(list(body.inputs))
    cost = Cost(rows, 0, passes * entry.parameters, "k")
    out = await _run(
        request, entry, "log-likelihood", params, rows, body.seed, as_json, cost, decode=decode
    )
    return _respond(out)


def _respond(result: Response | BaseModel) -> Response:
    """The finished result as the HTTP response (pydantic bodies serialised once)."""
    return result if isinstance(result, Response) else json_response(result)
