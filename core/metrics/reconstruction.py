"""Reconstruction quality per modality: MSE always, SSIM for images, accuracy for categoricals.

Three settings: self (x_m -> x_m), cross (the other modalities -> x_m) and joint (all -> x_m).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.metrics.common import batches, device_of, modality_kind, observed_all
from core.models.base import MultimodalVAE


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Per-sample mean squared error [B] over all non-batch dimensions."""
    return ((x - y) ** 2).flatten(1).mean(-1)


def _gaussian_window(size: int, sigma: float, channels: int, like: Tensor) -> Tensor:
    r = torch.arange(size, dtype=like.dtype, device=like.device) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(
    x: Tensor, y: Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5
) -> Tensor:
    """Per-sample SSIM [B] of images [B, C, H, W] (Wang et al. 2004, Gaussian window, valid
    convolution, K1=0.01, K2=0.03); the window shrinks to fit images smaller than it."""
    if x.ndim != 4 or x.shape != y.shape:
        raise ValueError(f"ssim: needs two image batches [B, C, H, W], got {x.shape}, {y.shape}")
    size = min(window, x.shape[-1], x.shape[-2])
    size -= 1 - size % 2  # odd
    w = _gaussian_window(size, sigma * size / window, x.shape[1], x)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def blur(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=x.shape[1])

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(-1)


def _scores(kind: str, x: Tensor, rec: Tensor) -> dict[str, Tensor]:
    out = {"mse": mse(rec, x)}
    if kind == "image":
        out["ssim"] = ssim(rec.clamp(0, 1), x.clamp(0, 1))
    if kind == "categorical":
        out["accuracy"] = (rec.flatten(1).argmax(-1) == x.flatten(1).argmax(-1)).double()
    return out


@torch.no_grad()
def reconstruct(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str],
    target: str,
    batch_size: int = 256,
    mean_latent: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, float | int]:
    """Scores of `target` generated from `given` (each sample fuses the given modalities it
    observes) over the samples observing `target` and at least one given modality."""
    model.eval()
    keep = observed_all(dataset, [target])
    has_given = torch.zeros(len(dataset), dtype=torch.bool)
    for m in given:
        has_given |= dataset.masks[m]
    keep = keep[has_given[keep]]
    if not len(keep):
        return {"n": 0}
    kind = modality_kind(model, target)
    acc: dict[str, list[Tensor]] = {}
    for b in batches(dataset, batch_size, device_of(model), keep):
        rec = model.generate(b, given, [target], generator=generator, mean_latent=mean_latent)
        for name, v in _scores(kind, b.data[target], rec[target][0]).items():
            acc.setdefault(name, []).append(v.cpu())
    scores = {name: float(torch.cat(v).double().mean()) for name, v in acc.items()}
    return {**scores, "n": len(keep)}


def reconstruction(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    modalities: Sequence[str] | None = None,
    batch_size: int = 256,
    mean_latent: bool = True,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """{"self"|"cross"|"joint": {modality: {mse, ssim (images), accuracy (categorical), n}}}.

    `mean_latent`: decode the posterior mean (deterministic) rather than a posterior draw.
    """
    kw: dict[str, Any] = {"batch_size": batch_size, "mean_latent": mean_latent}
    kw["generator"] = generator
    out: dict[str, dict] = {"self": {}, "cross": {}, "joint": {}}
    for m in modalities or model.generated:
        others = [o for o in model.names if o != m]
        for kind, given in (("self", [m]), ("cross", others), ("joint", model.names)):
            if given and model.generation_error(given, [m]) is None:
                out[kind][m] = reconstruct(model, dataset, given, m, **kw)
    out["mean_latent"] = mean_latent
    return out


__all__ = ["mse", "reconstruct", "reconstruction", "ssim"]
