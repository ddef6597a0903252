"""The torch side of each inference operation, on a merged batch, and the split back per request.

Everything here runs in the inference worker thread, never on the event loop: each request's
inputs are decoded to tensors (`Work.decode`), the requests' samples are concatenated, the
operation runs once, and each request's share of the outputs is encoded for its response
(`Work.finish`). Keeping torch calls off the event loop matters for a small model: every torch
call releases the GIL, and on the loop thread each one waited for the worker to hand it back
(bench/RESULTS.md). A request whose decoding or encoding fails gets its own error; the others
are unaffected.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from core.data.batch import Batch
from core.models.base import MultimodalVAE
from service.codecs import decode_merged

Outputs = dict[str, tuple[Tensor, int]]  # name → (tensor, batch axis)
Operation = Callable[[MultimodalVAE, Batch | None, dict[str, Any], torch.Generator | None], Outputs]


@dataclass(frozen=True)
class Work:
    """One request's share of a forward pass: the model and operation parameters (equal for
    every request merged), its row count and seed, `decode` building its samples (None for
    `sample`) and `finish` turning its outputs into what the route answers (default: the
    tensors themselves). Both run in the worker thread and may raise an `ApiError`. `inputs`:
    the raw inputs `decode` reads, given when nothing but decoding them is needed, so that
    requests in a common form can be decoded together (`codecs.decode_merged`)."""

    model: MultimodalVAE
    params: dict[str, Any]
    rows: int
    seed: int | None = None
    decode: Callable[[], Batch] | None = None
    finish: Callable[[dict[str, Tensor]], Any] | None = None
    inputs: dict[str, Any] | None = None


def op_encode(model: MultimodalVAE, batch: Batch | None, p: dict[str, Any], g: Any) -> Outputs:
    """Per latent space, `spaces.<space>.mean` / `.scale` (the posterior's mean and standard
    deviation, [B, D], or [S, B, D] where it depends on another space's draws) and `.samples`
    [S, B, D]; `mean` / `scale` / `samples` repeat the primary space's; `clusters` [B, C] the
    cluster probabilities of models with a clustered prior."""
    assert batch is not None
    n = p["n_samples"]
    latent = model.encode(batch, None, n_samples=max(n, 1), mean=n == 0, generator=g)
    out: Outputs = {}
    for space, post in latent.posteriors.items():
        mean = post.mean
        axis = 1 if mean.ndim == 3 else 0
        out[f"spaces.{space}.mean"] = (mean, axis)
        out[f"spaces.{space}.scale"] = (post.stddev, axis)
        if n:
            out[f"spaces.{space}.samples"] = (latent.codes[space], 1)
    for key in ("mean", "scale", "samples"):
        if f"spaces.{latent.primary}.{key}" in out:
            out[key] = out[f"spaces.{latent.primary}.{key}"]
    clusters = model.cluster_probabilities(latent)
    if clusters is not None:
        out["clusters"] = (clusters, 0)
    return out


def op_generate(model: MultimodalVAE, batch: Batch | None, p: dict[str, Any], g: Any) -> Outputs:
    assert batch is not None
    outs = model.generate(batch, None, p["targets"], p["n_samples"], g, p["mean_latent"])
    return {m: (x, 1) for m, x in outs.items()}


def op_reconstruct(model: MultimodalVAE, batch: Batch | None, p: dict[str, Any], g: Any) -> Outputs:
    """`rec.<m>` from every observed input; `cross.<s>.<m>` from source `s` alone (for the sources
    the model can generate from alone), NaN in the rows that lack `s`, with `cross.<s>` holding
    the row mask."""
    assert batch is not None
    targets, n, mean = p["targets"], p["n_samples"], p["mean_latent"]
    out: Outputs = {
        f"rec.{m}": (x, 1) for m, x in model.generate(batch, None, targets, n, g, mean).items()
    }
    if not p["cross"]:
        return out
    for source in model.names:
        rows = batch.masks[source]
        if not bool(rows.any()) or model.generation_error([source], targets) is not None:
            continue
        sub = model.generate(batch.index(rows.nonzero().flatten()), [source], targets, n, g, mean)
        out[f"cross.{source}"] = (rows.float(), 0)
        for m, x in sub.items():
            full = torch.full((x.shape[0], batch.size, *x.shape[2:]), float("nan"))
            full[:, rows] = x
            out[f"cross.{source}.{m}"] = (full, 1)
    return out


def op_sample(model: MultimodalVAE, _: Batch | None, p: dict[str, Any], g: Any) -> Outputs:
    sampler = None if p["sampler"] == "prior" else model.sampler
    outs = model.sample(p["n"], sampler=sampler, modalities=p["modalities"], generator=g)
    return {m: (x, 0) for m, x in outs.items()}


def op_log_likelihood(
    model: MultimodalVAE, batch: Batch | None, p: dict[str, Any], g: Any
) -> Outputs:
    from core.metrics.likelihood import conditional_log_prob

    assert batch is not None
    if p["given"] is None:
        ll = model.log_likelihood(batch, k=p["k"], generator=g)
    else:
        targets = [m for m in model.names if m not in p["given"]]
        ll = conditional_log_prob(model, batch, p["given"], targets, k=p["k"], generator=g)
    return {"log_likelihood": (ll, 0)}


OPERATIONS: dict[str, Operation] = {
    "encode": op_encode,
    "generate": op_generate,
    "reconstruct": op_reconstruct,
    "sample": op_sample,
    "log-likelihood": op_log_likelihood,
}


def merge(batches: Sequence[Batch]) -> Batch:
    """Concatenate the requests' batches along the sample dimension."""
    if len(batches) == 1:
        return batches[0]
    first = batches[0]
    return Batch(
        {m: torch.cat([b.data[m] for b in batches]) for m in first.data},
        {m: torch.cat([b.masks[m] for b in batches]) for m in first.masks},
    )


def split(outputs: Outputs, rows: Sequence[int]) -> list[dict[str, Tensor]]:
    """Cut every output along its batch axis into consecutive pieces of `rows` samples."""
    pieces: list[dict[str, Tensor]] = [{} for _ in rows]
    for name, (x, axis) in outputs.items():
        for i, part in enumerate(torch.split(x, list(rows), dim=axis)):
            pieces[i][name] = part
    return pieces


def run(op: str, works: Sequence[Work]) -> list[Any]:
    """One forward pass for `works` (all unseeded, or a single seeded one): per request, its
    finished result, or the exception that decoding or finishing it raised."""
    merged = _decode_merged(works)
    if merged is not None:
        return _forward(op, works, list(range(len(works))), merged, [None] * len(works))
    results: list[Any] = [None] * len(works)
    live: list[int] = []
    batches: list[Batch] = []
    for i, work in enumerate(works):
        if work.decode is None:
            live.append(i)
            continue
        try:
            batch = work.decode()
        except Exception as err:
            results[i] = err
            continue
        if batch.size != work.rows:
            raise RuntimeError(f"decoded {batch.size} samples for a request of {work.rows}")
        batches.append(batch)
        live.append(i)
    if not live:
        return results
    return _forward(op, works, live, merge(batches) if batches else None, results)


def _decode_merged(works: Sequence[Work]) -> Batch | None:
    """Every request's inputs as one Batch, when all have inputs in the common form."""
    inputs = [w.inputs for w in works if w.inputs is not None]
    if len(works) < 2 or len(inputs) < len(works):  # one request: decoded alone, as it is
        return None
    return decode_merged(inputs, [w.rows for w in works], works[0].model.config.modalities)


def _forward(
    op: str, works: Sequence[Work], live: list[int], merged: Batch | None, results: list[Any]
) -> list[Any]:
    """Run `op` on the decoded samples of the `live` requests; fill in their results."""
    model, params = works[0].model, works[0].params
    generator = None
    if len(works) == 1 and works[0].seed is not None:
        generator = torch.Generator().manual_seed(works[0].seed)
    rows = [works[i].rows for i in live]
    if op == "sample":
        params = {**params, "n": sum(rows)}
    with torch.inference_mode():
        outputs = OPERATIONS[op](model, merged, params, generator)
        pieces = split(outputs, rows)
        for i, piece in zip(live, pieces, strict=True):
            finish = works[i].finish
            try:
                results[i] = piece if finish is None else finish(piece)
            except Exception as err:
                results[i] = err
    return results


def group_key(op: str, params: dict[str, Any], seed: int | None, token: object) -> Hashable:
    """Requests with equal keys may share a forward pass: same operation and parameters, and
    no seed (a seeded request runs alone so its draws depend on nothing else; `token` is unique
    per request)."""
    frozen = tuple((k, _freeze(v)) for k, v in params.items())  # key order: a missed merge at worst
    return (op, frozen, None if seed is None else token)


def _freeze(value: Any) -> Hashable:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, Hashable):
        return value
    return id(value)
