"""Latent distributions: diagonal Normal/Laplace, per-sample mixtures, and KL divergences.

Shapes: parameters are [..., B, D]; `rsample(S)` returns [S, ..., B, D]; `log_prob(z)` sums over D.
Written by hand (not torch.distributions) so sampling takes a `generator` and mixtures pick a
component per sample, never per batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Family = Literal["normal", "laplace"]
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _noise(shape: tuple[int, ...], family: Family, like: Tensor, generator=None) -> Tensor:
    if family == "normal":
        return torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    u = u.clamp(torch.finfo(like.dtype).eps, 1 - torch.finfo(like.dtype).eps) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # standard Laplace by inversion


@dataclass
class Diagonal:
    """Independent Normal or Laplace over the last dimension."""

    loc: Tensor
    scale: Tensor
    family: Family = "normal"

    @property
    def mean(self) -> Tensor:
        return self.loc

    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        shape = (n_samples, *self.loc.shape)
        return self.loc + self.scale * _noise(shape, self.family, self.loc, generator)

    def log_prob(self, z: Tensor) -> Tensor:
        if self.family == "normal":
            lp = -0.5 * ((z - self.loc) / self.scale) ** 2 - self.scale.log() - _HALF_LOG_2PI
        else:
            lp = -(z - self.loc).abs() / self.scale - self.scale.log() - math.log(2)
        return lp.sum(-1)

    def detach(self) -> Diagonal:
        return Diagonal(self.loc.detach(), self.scale.detach(), self.family)

    def index(self, idx) -> Diagonal:
        return Diagonal(self.loc[idx], self.scale[idx], self.family)


def kl_divergence(p: Diagonal, q: Diagonal) -> Tensor:
    """Closed-form KL(p ‖ q) summed over D, for two distributions of the same family."""
    if p.family != q.family:
        raise ValueError(f"KL between {p.family} and {q.family} has no closed form here")
    if p.family == "normal":
        var_ratio = (p.scale / q.scale) ** 2
        t = ((p.loc - q.loc) / q.scale) ** 2
        return 0.5 * (var_ratio + t - 1 - var_ratio.log()).sum(-1)
    diff = (p.loc - q.loc).abs()
    kl = q.scale.log() - p.scale.log() + diff / q.scale
    kl = kl + p.scale / q.scale * torch.exp(-diff / p.scale) - 1
    return kl.sum(-1)


@dataclass
class Mixture:
    """Per-sample mixture: components [C, B, D], `log_weights` [B, C] (-inf = unavailable)."""

    components: Diagonal
    log_weights: Tensor

    @property
    def family(self) -> Family:
        return self.components.family

    @property
    def mean(self) -> Tensor:
        w = self.log_weights.softmax(-1).transpose(0, 1).unsqueeze(-1)  # [C, B, 1]
        return (w * self.components.loc).sum(0)

    def choose(self, n_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Component index per draw and sample: [S, B], drawn from each sample's own weights."""
        probs = self.log_weights.softmax(-1)  # [B, C]
        idx = torch.multinomial(probs, n_samples, replacement=True, generator=generator)
        return idx.transpose(0, 1)

    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        comp = self.choose(n_samples, generator)  # [S, B]
        b = torch.arange(comp.shape[1], device=comp.device)
        loc = self.components.loc[comp, b]  # [S, B, D]
        scale = self.components.scale[comp, b]
        eps = _noise(tuple(loc.shape), self.family, loc, generator)
        return loc + scale * eps

    def log_prob(self, z: Tensor) -> Tensor:
        """log Σ_c w_c q_c(z); z is [S, B, D] -> [S, B]."""
        per_comp = self.components.log_prob(z.unsqueeze(-3))  # [S, C, B]
        return torch.logsumexp(per_comp + self.log_weights.transpose(0, 1), dim=-2)

    def detach(self) -> Mixture:
        return Mixture(self.components.detach(), self.log_weights.detach())


Posterior = Diagonal | Mixture


def standard(
    shape: tuple[int, ...], family: Family = "normal", like: Tensor | None = None
) -> Diagonal:
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    return Diagonal(torch.zeros(shape, **kw), torch.ones(shape, **kw), family)


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    return torch.logsumexp(x, dim) - math.log(x.shape[dim])
