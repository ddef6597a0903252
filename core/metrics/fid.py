"""Fréchet distance between feature statistics of real and generated data, per modality.

Feature extractors are pluggable: raw pixels, any callable (e.g. a classifier's penultimate
layer), or InceptionV3 — the last only with pretrained weights (`InceptionV3Features`).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import scipy.linalg
import torch
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.metrics.common import batches, device_of, observed_all, proper_subsets, subset_key
from core.metrics.inception import FEATURE_DIMS, InceptionV3, MissingWeightsError, load_inception
from core.models.base import MultimodalVAE

__all__ = [
    "CallableFeatures",
    "FeatureExtractor",
    "InceptionV3Features",
    "MissingWeightsError",
    "PixelFeatures",
    "feature_statistics",
    "fid",
    "fid_scores",
    "frechet_distance",
]


@runtime_checkable
class FeatureExtractor(Protocol):
    """Maps a batch of one modality [B, *shape] to features [B, F]; `name` labels the report."""

    name: str

    def __call__(self, x: Tensor) -> Tensor: ...


class PixelFeatures:
    """The flattened values themselves (FID in data space): cheap, weight-free, comparable."""

    name = "pixels"

    def __call__(self, x: Tensor) -> Tensor:
        return x.flatten(1)


class CallableFeatures:
    """Any callable as extractor, e.g. a trained classifier's penultimate layer."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str = "custom") -> None:
        self.fn, self.name = fn, name

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x).flatten(1)


class InceptionV3Features:
    """InceptionV3 pool features of images in [0, 1] (2048-d by default; 64, 192 or 768 from
    earlier blocks); pretrained weights required."""

    def __init__(self, network: InceptionV3, dims: int = 2048) -> None:
        if dims not in FEATURE_DIMS:
            raise ValueError(f"dims: {dims} is not one of {FEATURE_DIMS}")
        self.network, self.dims = network.eval(), dims
        self.name = "inception_v3" if dims == 2048 else f"inception_v3_{dims}"

    @classmethod
    def from_weights(
        cls, weights: str | os.PathLike | None, dims: int = 2048
    ) -> InceptionV3Features:
        """Load from a safetensors file or `hf://REPO_ID@SHA/FILE`; MissingWeightsError if None."""
        return cls(load_inception(weights), dims)

    @torch.no_grad()
    def __call__(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"Inception FID: needs images [B, 1|3, H, W], got {list(x.shape)}")
        p = next(self.network.parameters())
        return self.network(x.to(p.device, p.dtype).clamp(0, 1), self.dims)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """‖μ1-μ2‖² + tr(Σ1 + Σ2 - 2 (Σ1 Σ2)^½), the Fréchet distance of two Gaussians.

    A singular product gets `eps` added to both diagonals; a tiny imaginary part from
    numerical error is dropped (a large one is an error).
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"statistics of different sizes: {mu1.shape} vs {mu2.shape}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", scipy.linalg.LinAlgWarning)
        try:
            covmean = scipy.linalg.sqrtm(s1 @ s2)
        except (scipy.linalg.LinAlgWarning, np.linalg.LinAlgError):
            covmean = np.full_like(s1, np.nan)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"sqrtm: imaginary component {np.abs(covmean.imag).max():.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def feature_statistics(features: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] (unbiased) of features [N, F]."""
    f = features.detach().cpu().double().numpy()
    return f.mean(0), np.atleast_2d(np.cov(f, rowvar=False))


def _features(extractor: FeatureExtractor, xs: list[Tensor]) -> Tensor:
    return torch.cat([extractor(x).detach().cpu() for x in xs])


@torch.no_grad()
def fid(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    modality: str,
    extractor: FeatureExtractor | None = None,
    given: Sequence[str] | None = None,
    n: int | None = None,
    sampler: Any = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> float:
    """FID of `modality` between the dataset's observed values and generated ones.

    `given=None`: `n` unconditional samples (default: as many as real ones); otherwise
    generated from `given` for every sample that observes all of it.
    """
    model.eval()
    extractor = extractor or PixelFeatures()
    device = device_of(model)
    real_idx = observed_all(dataset, [modality])
    real = _features(
        extractor, [b.data[modality] for b in batches(dataset, batch_size, None, real_idx)]
    )
    if given is None:
        total = n or len(real_idx)
        fake_x = [
            model.sample(min(batch_size, total - s), sampler, [modality], generator)[modality]
            for s in range(0, total, batch_size)
        ]
    else:
        idx = observed_all(dataset, given)
        idx = idx[:n] if n else idx
        fake_x = [
            model.generate(b, given, [modality], generator=generator)[modality][0]
            for b in batches(dataset, batch_size, device, idx)
        ]
    fake = _features(extractor, fake_x)
    if len(real) < 2 or len(fake) < 2:
        raise ValueError(f"fid {modality}: needs at least 2 real and 2 generated samples")
    return frechet_distance(*feature_statistics(real), *feature_statistics(fake))


def fid_scores(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    extractor: FeatureExtractor | Mapping[str, FeatureExtractor] | None = None,
    modalities: Sequence[str] | None = None,
    conditional: bool = True,
    n: int | None = None,
    sampler: Any = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    every_subset: bool = False,
) -> dict[str, Any]:
    """Unconditional FID per modality and, if `conditional`, FID of each modality generated from
    all the others — or, with `every_subset`, from every non-empty subset of the others (keys
    `given->target`). Defaults: image modalities, raw-pixel features."""
    if modalities is None:
        modalities = [m for m in model.generated if model.config.modality(m).kind == "image"]
    result: dict[str, Any] = {"unconditional": {}, "conditional": {}, "extractor": {}}
    for m in modalities:
        ext = extractor.get(m) if isinstance(extractor, Mapping) else extractor
        ext = ext or PixelFeatures()
        result["extractor"][m] = ext.name
        kw = {"n": n, "sampler": sampler, "batch_size": batch_size, "generator": generator}
        if model.sampling_error(sampler) is None:  # e.g. a conditional model has none
            result["unconditional"][m] = fid(model, dataset, m, ext, None, **kw)
        others = [o for o in model.names if o != m]
        if not conditional or not others:
            continue
        for given in [*proper_subsets(others), others] if every_subset else [others]:
            if model.generation_error(given, [m]) is None:
                key = f"{subset_key(given)}->{m}"
                result["conditional"][key] = fid(model, dataset, m, ext, given, **kw)
    return result
