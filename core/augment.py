"""Data augmentation with a trained model: fully synthetic samples, or completing missing
modalities of a dataset, generated in chunks and written as the project's .npz format.

Randomness is drawn per block of `BLOCK` rows from a generator seeded by (seed, block index),
so the output depends on `seed` only, never on `chunk_size`; `chunk_size` bounds the rows
that go through the networks at once (the returned dataset itself is held in memory). Latents
are handled by space name (`model.latent_spaces`), so any model's spaces are covered: synthetic
rows come from `model.draw_prior`, completed rows from `model.encode` with noise drawn per block
(`Noise`), and a fitted sampler supplies the spaces of the modalities a sample lacks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from core.data.dataset import MultimodalDataset
from core.models.base import MultimodalVAE
from core.models.distributions import Noise
from core.models.latents import Latent
from core.samplers.base import Sampler
from core.samplers.prior import PriorSampler

BLOCK = 256
Categorical = Literal["sample", "argmax"]
Draw = Callable[[int, torch.Generator], dict[str, Tensor]]


class _Stream:
    """Per-row random draws for rows [start, stop), produced block by block (cached)."""

    def __init__(self, seed: int, n: int, draw: Draw) -> None:
        self.seed, self.n, self.draw = seed, n, draw
        self.cache: dict[int, dict[str, Tensor]] = {}

    def _block(self, k: int) -> dict[str, Tensor]:
        if k not in self.cache:
            state = np.random.SeedSequence([self.seed, k]).generate_state(2, np.uint64)[0]
            g = torch.Generator().manual_seed(int(state))
            self.cache = {k: self.draw(min(BLOCK, self.n - k * BLOCK), g)}  # keep one block
        return self.cache[k]

    def take(self, start: int, stop: int) -> dict[str, Tensor]:
        parts = []
        for k in range(start // BLOCK, (stop - 1) // BLOCK + 1):
            lo = max(start - k * BLOCK, 0)
            hi = min(stop - k * BLOCK, BLOCK)
            parts.append({key: v[lo:hi] for key, v in self._block(k).items()})
        return {key: torch.cat([p[key] for p in parts]) for key in parts[0]}


def _categorical(model: MultimodalVAE) -> list[str]:
    return [m.name for m in model.config.modalities if m.likelihood.kind == "categorical"]


def _one_hot(probs: Tensor, u: Tensor | None) -> Tensor:
    """A one-hot class per row: drawn by inverse CDF with uniforms `u`, or argmax when None."""
    if u is None:
        idx = probs.argmax(-1)
    else:
        cdf = probs.cumsum(-1)
        idx = (cdf < u.unsqueeze(-1) * cdf[..., -1:]).sum(-1).clamp(max=probs.shape[-1] - 1)
    return torch.nn.functional.one_hot(idx, probs.shape[-1]).to(probs.dtype)


def _uniforms(model: MultimodalVAE, k: int, g: torch.Generator) -> dict[str, Tensor]:
    return {
        f"pick/{m}": torch.rand(k, *model.shapes[m][:-1], generator=g) for m in _categorical(model)
    }


def _provenance(
    model: MultimodalVAE, sampler: Sampler, seed: int, n: int, mode: str, categorical: str
) -> dict[str, Any]:
    from core import __version__

    source = getattr(model, "source", None)
    if source is not None and not isinstance(source, dict):
        source = str(source)
    return {
        "provenance": {
            "model_type": model.model_type,
            "model_source": source,
            "sampler": sampler.config(),
            "seed": seed,
            "n": n,
            "mode": mode,
            "categorical": categorical,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "library_version": __version__,
        }
    }


def augment(
    model: MultimodalVAE,
    n: int | None = None,
    sampler: Sampler | None = None,
    given: MultimodalDataset | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
    output: str | os.PathLike | None = None,
    progress: bool = False,
    categorical: Categorical = "sample",
    on_progress: Callable[[int, int], None] | None = None,
) -> MultimodalDataset:
    """`n` fully synthetic samples (latents from `sampler`), or, with `given`, `given` with its
    missing modalities generated from each sample's observed ones (observed values kept exactly).

    `sampler`: default `model.sampler` if set, else the model's priors. Categorical modalities
    become one-hot: a class drawn from the decoded probabilities ("sample") or their argmax. Labels:
    `given.labels`, else the class of a categorical modality named "label", else none. Every
    mask of the result is True; with `output`, it is also written as .npz. `on_progress(done,
    total)` is called after each chunk (a job's progress; it may raise to stop).
    """
    if given is None and (n is None or n < 1):
        raise ValueError(f"n: the number of samples must be a positive integer, got {n}")
    if given is not None and n not in (None, len(given)):
        raise ValueError(f"n: completing a dataset of {len(given)} samples, got n={n}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size: must be positive, got {chunk_size}")
    if seed < 0:
        raise ValueError(f"seed: must be non-negative, got {seed}")
    if categorical not in ("sample", "argmax"):
        raise ValueError(f"categorical: 'sample' or 'argmax', got {categorical!r}")
    sampler = sampler or model.sampler or PriorSampler()
    sampler.to("cpu")
    reason = model.sampling_error(sampler) if given is None else None
    if reason is not None:
        raise ValueError(f"sampler: {reason}")
    total = len(given) if given is not None else int(n)
    was_training = model.training
    model.eval()
    try:
        if given is None:
            data = _synthetic(
                model, sampler, total, seed, chunk_size, progress, categorical, on_progress
            )
        else:
            data = _complete(
                model, sampler, given, seed, chunk_size, progress, categorical, on_progress
            )
    finally:
        model.train(was_training)
    labels = given.labels if given is not None else None
    if labels is None and "label" in _categorical(model) and len(model.shapes["label"]) == 1:
        labels = data["label"].argmax(-1)
    mode = "synthetic" if given is None else "completion"
    meta = _provenance(model, sampler, seed, total, mode, categorical)
    if given is not None:
        meta["source_metadata"] = given.metadata
    dataset = MultimodalDataset(data, None, labels, meta)
    if output is not None:
        from core.data.npz import save_npz

        save_npz(dataset, Path(output))
    return dataset


def _empty(model: MultimodalVAE, n: int) -> dict[str, Tensor]:
    return {m: torch.zeros(n, *model.shapes[m]) for m in model.names}


def _device(model: MultimodalVAE) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def _synthetic(
    model: MultimodalVAE,
    sampler: Sampler,
    n: int,
    seed: int,
    chunk_size: int,
    progress: bool,
    categorical: Categorical,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, Tensor]:
    def draw(k: int, g: torch.Generator) -> dict[str, Tensor]:
        latent = model.draw_prior(k, sampler, g)
        codes = {f"z/{space}": c[0] for space, c in latent.codes.items()}
        return {**codes, **_uniforms(model, k, g)}

    stream, out, device = _Stream(seed, n, draw), _empty(model, n), _device(model)
    with tqdm(total=n, disable=not progress, unit="sample", desc="augment") as bar:
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            rows = {k: v.to(device) for k, v in stream.take(start, stop).items()}
            codes = {space: rows[f"z/{space}"][None] for space in model.latent_spaces}
            values = model.decode_mean(Latent(codes, primary=model.primary_space))
            for m, x in values.items():
                x = x[0]
                if m in _categorical(model):
                    x = _one_hot(x, rows[f"pick/{m}"] if categorical == "sample" else None)
                out[m][start:stop] = x.float().cpu()
            bar.update(stop - start)
            if on_progress is not None:
                on_progress(stop, n)
    return out


@torch.no_grad()
def _complete(
    model: MultimodalVAE,
    sampler: Sampler,
    given: MultimodalDataset,
    seed: int,
    chunk_size: int,
    progress: bool,
    categorical: Categorical,
    on_progress: Callable[[int, int], None] | None,
) -> dict[str, Tensor]:
    if set(given.modalities) != set(model.names):
        raise ValueError(
            f"given: modalities {given.modalities} differ from the model's {model.names}"
        )
    for m in model.names:
        if given.shapes[m] != model.shapes[m]:
            raise ValueError(
                f"given: {m} has shape {list(given.shapes[m])}, model expects "
                f"{list(model.shapes[m])}"
            )
    covered = sampler.covering(model.sampled_spaces)

    def draw(k: int, g: torch.Generator) -> dict[str, Tensor]:
        rows: dict[str, Tensor] = {}
        for name, space in model.latent_spaces.items():
            noise = Noise.draw(1, k, space.dim, space.family, g)
            rows[f"eps/{name}"], rows[f"mix/{name}"] = noise.eps[0], noise.u[0]
        rows.update({f"w/{name}": sampler.sample_space(name, k, g) for name in covered})
        return {**rows, **_uniforms(model, k, g)}

    n, device = len(given), _device(model)
    stream, out = _Stream(seed, n, draw), {m: x.clone() for m, x in given.data.items()}
    with tqdm(total=n, disable=not progress, unit="sample", desc="complete") as bar:
        for start in range(0, n, chunk_size):
            stop = min(start + chunk_size, n)
            batch = given.batch(slice(start, stop)).to(device)
            targets = [m for m in model.generated if not bool(batch.masks[m].all())]
            if targets:
                rows = {k: v.to(device) for k, v in stream.take(start, stop).items()}
                noise = {
                    name: Noise(rows[f"eps/{name}"][None], rows[f"mix/{name}"][None])
                    for name in model.latent_spaces
                }
                latent = model.encode(batch, noise=noise)
                for name, observed in latent.observed.items():  # spaces of absent modalities
                    if name in covered:
                        keep = observed.view(1, -1, 1)
                        drawn = rows[f"w/{name}"][None]
                        latent.codes[name] = torch.where(keep, latent.codes[name], drawn)
                decoded = model.decode_mean(latent, targets)
                for m in targets:
                    x = decoded[m][0]
                    if m in _categorical(model):
                        x = _one_hot(x, rows[f"pick/{m}"] if categorical == "sample" else None)
                    keep = batch.masks[m].view(-1, *([1] * (x.ndim - 1)))
                    out[m][start:stop] = torch.where(keep, batch.data[m], x).float().cpu()
            bar.update(stop - start)
            if on_progress is not None:
                on_progress(stop, n)
    return out
