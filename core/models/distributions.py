"""Latent distributions: one posterior protocol, and its diagonal, mixture and flow forms.

Every posterior (and prior) is a `Posterior`: `rsample(n, generator)`, `log_prob`, `mean`,
`stddev` (and `entropy` where it has a closed form), `reparameterize(noise)` and `select(rows)`.
Code outside `core/models/` uses only this protocol and never checks a posterior's class.

Shapes: parameters are [..., B, D]; `rsample(S)` returns [S, ..., B, D]; `log_prob(z)` sums over
D. Written by hand (not torch.distributions) so sampling takes a `generator` and mixtures pick a
component per sample, never per batch.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import torch
from torch import Tensor

Family = Literal["normal", "laplace"]
FAMILIES: tuple[Family, ...] = ("normal", "laplace")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_MOMENT_DRAWS = 256  # Monte-Carlo draws for the moments of posteriors without closed forms


def standard_noise(
    shape: tuple[int, ...], family: Family, like: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """Standard Normal or Laplace noise of `shape`, on `like`'s device and dtype."""
    if family == "normal":
        return torch.randn(shape, dtype=like.dtype, device=like.device, generator=generator)
    u = torch.rand(shape, dtype=like.dtype, device=like.device, generator=generator)
    u = u.clamp(torch.finfo(like.dtype).eps, 1 - torch.finfo(like.dtype).eps) - 0.5
    return -torch.sign(u) * torch.log1p(-2 * u.abs())  # standard Laplace by inversion


@dataclass(frozen=True)
class Noise:
    """The randomness of draws made ahead of time: `eps` [S, B, D] standard noise of the
    posterior's family and `u` [S, B] uniforms (mixtures choose their component with it).

    `posterior.reparameterize(noise)` turns it into draws, so a caller can fix each sample's
    randomness independently of how samples are batched (used by data augmentation).
    """

    eps: Tensor
    u: Tensor

    @classmethod
    def draw(
        cls,
        n_samples: int,
        rows: int,
        dim: int,
        family: Family,
        generator: torch.Generator | None = None,
    ) -> Noise:
        like = torch.empty(0, device=generator.device if generator is not None else "cpu")
        eps = standard_noise((n_samples, rows, dim), family, like, generator)
        return cls(eps, torch.rand(n_samples, rows, generator=generator, device=like.device))

    def rows(self, index: Tensor | slice) -> Noise:
        return Noise(self.eps[:, index], self.u[:, index])

    def to(self, device: torch.device | str) -> Noise:
        return Noise(self.eps.to(device), self.u.to(device))


class Posterior(ABC):
    """What every latent distribution offers (see the module docstring)."""

    family: Family

    @abstractmethod
    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        """[S, ..., B, D] reparameterised draws."""

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """log density of z [S, ..., B, D] -> [S, ..., B]."""

    @abstractmethod
    def reparameterize(self, noise: Noise) -> Tensor:
        """The draws [S, B, D] that `noise` gives (same law as `rsample`)."""

    @abstractmethod
    def select(self, rows: Tensor | slice) -> Posterior:
        """The posterior of the samples at `rows` (the batch dimension)."""

    @abstractmethod
    def detach(self) -> Posterior:
        """The same distribution with parameters cut from the autograd graph."""

    @property
    @abstractmethod
    def batch_shape(self) -> torch.Size:
        """[..., B]: [B] for one posterior per sample, [S, B] for one per draw of another
        space (the conditional posteriors of a hierarchy)."""

    @property
    @abstractmethod
    def mean(self) -> Tensor:
        """[..., B, D]."""

    @property
    @abstractmethod
    def stddev(self) -> Tensor:
        """Standard deviation per dimension [..., B, D]."""

    @property
    def dim(self) -> int:
        return self.mean.shape[-1]

    def entropy(self) -> Tensor:
        """Differential entropy [..., B]; only where a closed form exists."""
        raise NotImplementedError(f"{type(self).__name__}: entropy has no closed form")


@dataclass
class Diagonal(Posterior):
    """Independent Normal or Laplace over the last dimension."""

    loc: Tensor
    scale: Tensor
    family: Family = "normal"

    @property
    def batch_shape(self) -> torch.Size:
        return self.loc.shape[:-1]

    @property
    def mean(self) -> Tensor:
        return self.loc

    @property
    def stddev(self) -> Tensor:
        return self.scale * (math.sqrt(2.0) if self.family == "laplace" else 1.0)

    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        shape = (n_samples, *self.loc.shape)
        return self.loc + self.scale * standard_noise(shape, self.family, self.loc, generator)

    def reparameterize(self, noise: Noise) -> Tensor:
        return self.loc + self.scale * noise.eps.to(self.loc.dtype)

    def log_prob(self, z: Tensor) -> Tensor:
        if self.family == "normal":
            lp = -0.5 * ((z - self.loc) / self.scale) ** 2 - self.scale.log() - _HALF_LOG_2PI
        else:
            lp = -(z - self.loc).abs() / self.scale - self.scale.log() - math.log(2)
        return lp.sum(-1)

    def entropy(self) -> Tensor:
        if self.family == "normal":
            return (0.5 + _HALF_LOG_2PI + self.scale.log()).sum(-1)
        return (1 + math.log(2) + self.scale.log()).sum(-1)

    def detach(self) -> Diagonal:
        return Diagonal(self.loc.detach(), self.scale.detach(), self.family)

    def select(self, rows: Tensor | slice) -> Diagonal:
        return Diagonal(self.loc[..., rows, :], self.scale[..., rows, :], self.family)

    def index(self, idx: Any) -> Diagonal:
        """Index the leading (non-batch) dimensions, e.g. one expert of a stack [M, B, D]."""
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


# Molchanov et al. (2017)'s fit of −KL(q ‖ log-uniform) for variational dropout
_SPARSE_K1, _SPARSE_K2, _SPARSE_K3 = 0.63576, 1.8732, 1.48695


def dropout_log_alpha(posterior: Diagonal) -> Tensor:
    """log α = log σ² − 2 log|μ| of a Normal posterior, clamped to [−8, 8] (dropout rates
    α/(1+α) between 0.03 % and 99.97 %, as multi-view-AE and mcVAE clamp it)."""
    log_var = 2 * posterior.scale.log()
    return (log_var - 2 * torch.log(posterior.loc.abs() + 1e-8)).clamp(-8.0, 8.0)


def sparse_kl(posterior: Diagonal) -> Tensor:
    """The variational-dropout KL approximation of a sparse posterior (σ² = α μ²), summed over
    D: −KL ≈ k1 σ(k2 + k3 log α) − ½ log(1 + 1/α) − k1 (Molchanov et al. 2017)."""
    log_alpha = dropout_log_alpha(posterior)
    neg = (
        _SPARSE_K1 * torch.sigmoid(_SPARSE_K2 + _SPARSE_K3 * log_alpha)
        - 0.5 * torch.log1p(torch.exp(-log_alpha))
        - _SPARSE_K1
    )
    return -neg.sum(-1)


def _pick(cdf: Tensor, u: Tensor) -> Tensor:
    """Index of the first cumulative weight above u·total (inverse-CDF): [..., C] -> [...]."""
    return (cdf < u.unsqueeze(-1) * cdf[..., -1:]).sum(-1).clamp(max=cdf.shape[-1] - 1)


def _permutation(n: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """`torch.randperm(n)`, its generator argument left out when None: given at all, it selects
    the op's generator overload, which inductor's C++ wrapper cannot call (a compiled graph
    drawing one would fall back to the slower Python wrapper)."""
    if generator is None:
        return torch.randperm(n, device=device)
    return torch.randperm(n, generator=generator, device=device)


@dataclass
class Mixture(Posterior):
    """Per-sample mixture: components [C, B, D], `log_weights` [B, C] (-inf = unavailable)."""

    components: Diagonal
    log_weights: Tensor

    @property
    def family(self) -> Family:  # type: ignore[override]
        return self.components.family

    @property
    def batch_shape(self) -> torch.Size:
        return self.log_weights.shape[:-1]

    def _weights(self) -> Tensor:
        return self.log_weights.softmax(-1).transpose(0, 1).unsqueeze(-1)  # [C, B, 1]

    @property
    def mean(self) -> Tensor:
        return (self._weights() * self.components.loc).sum(0)

    @property
    def stddev(self) -> Tensor:
        """Of the whole mixture: sqrt(E[var_c + loc_c²] − mean²)."""
        comp = self.components
        second = (self._weights() * (comp.stddev**2 + comp.loc**2)).sum(0)
        return (second - self.mean**2).clamp_min(0).sqrt()

    def choose(self, n_samples: int, generator: torch.Generator | None = None) -> Tensor:
        """Component index per draw and sample: [S, B], drawn from each sample's own weights."""
        probs = self.log_weights.softmax(-1)  # [B, C]
        idx = torch.multinomial(probs, n_samples, replacement=True, generator=generator)
        return idx.transpose(0, 1)

    def _component_draw(self, comp: Tensor, eps: Tensor) -> Tensor:
        b = torch.arange(comp.shape[1], device=comp.device)
        return self.components.loc[comp, b] + self.components.scale[comp, b] * eps

    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        comp = self.choose(n_samples, generator)  # [S, B]
        shape = (*comp.shape, self.components.loc.shape[-1])
        eps = standard_noise(shape, self.family, self.components.loc, generator)
        return self._component_draw(comp, eps)

    def stratified_rsample(self, generator: torch.Generator | None = None) -> Tensor:
        """One draw per sample [1, B, D], the components dealt out in balanced proportions: the
        samples in a random order each take the next of their available components, so a
        complete batch gives every component B/C ± 1 samples (MoPoE's reference code does this
        for complete batches; it lowers the variance of what is estimated from the draws). For
        mixtures with equal weights over each sample's available components."""
        available = torch.isfinite(self.log_weights)  # [B, C]
        b = available.shape[0]
        order = _permutation(b, generator, available.device)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(b, device=order.device)
        k = rank % available.sum(-1)  # which of its available components each sample takes
        comp = (available.cumsum(-1) <= k.unsqueeze(-1)).sum(-1)  # index of the (k+1)-th
        loc = self.components.loc
        eps = standard_noise((1, b, loc.shape[-1]), self.family, loc, generator)
        return self._component_draw(comp.unsqueeze(0), eps)

    def reparameterize(self, noise: Noise) -> Tensor:
        cdf = self.log_weights.softmax(-1).cumsum(-1)  # [B, C]
        comp = _pick(cdf.expand(noise.u.shape[0], -1, -1), noise.u.to(cdf.dtype))  # [S, B]
        return self._component_draw(comp, noise.eps.to(cdf.dtype))

    def log_prob(self, z: Tensor) -> Tensor:
        """log Σ_c w_c q_c(z); z is [S, B, D] -> [S, B]."""
        per_comp = self.components.log_prob(z.unsqueeze(-3))  # [S, C, B]
        return torch.logsumexp(per_comp + self.log_weights.transpose(0, 1), dim=-2)

    def detach(self) -> Mixture:
        return Mixture(self.components.detach(), self.log_weights.detach())

    def select(self, rows: Tensor | slice) -> Mixture:
        return Mixture(self.components.select(rows), self.log_weights[rows])


class FlowPosterior(Posterior):
    """A diagonal `base` pushed through an invertible map: z = f⁻¹(u), u ~ base.

    `transform` is a zuko transform (or any object with `__call__`, `inv` and
    `call_and_ladj`) mapping latents z to the base space, applied over the last dimension:
    log q(z) = log base(f(z)) + log|det ∂f/∂z|. Moments have no closed form; `mean` and
    `stddev` are Monte-Carlo estimates from a fixed seed, so they are deterministic.
    """

    def __init__(self, base: Diagonal, transform: Any) -> None:
        self.base = base
        self.transform = transform
        self.family = base.family

    @property
    def batch_shape(self) -> torch.Size:
        return self.base.batch_shape

    def _to_latent(self, u: Tensor) -> Tensor:
        return self.transform.inv(u)

    def rsample(self, n_samples: int = 1, generator: torch.Generator | None = None) -> Tensor:
        return self._to_latent(self.base.rsample(n_samples, generator))

    def reparameterize(self, noise: Noise) -> Tensor:
        return self._to_latent(self.base.reparameterize(noise))

    def log_prob(self, z: Tensor) -> Tensor:
        u, ladj = self.transform.call_and_ladj(z)
        return self.base.log_prob(u) + ladj

    @cached_property
    def _moments(self) -> tuple[Tensor, Tensor]:
        """Mean and std from the same fixed draws of base noise for every sample, so a
        sample's moments do not depend on the rest of its batch."""
        loc = self.base.loc
        g = torch.Generator(device=loc.device).manual_seed(0)
        shape = (_MOMENT_DRAWS, *([1] * len(self.batch_shape)), loc.shape[-1])
        draws = self._to_latent(loc + self.base.scale * standard_noise(shape, self.family, loc, g))
        return draws.mean(0), draws.std(0)

    @property
    def mean(self) -> Tensor:
        return self._moments[0]

    @property
    def stddev(self) -> Tensor:
        return self._moments[1]

    @property
    def dim(self) -> int:
        return self.base.loc.shape[-1]

    def detach(self) -> FlowPosterior:
        return FlowPosterior(self.base.detach(), self.transform)

    def select(self, rows: Tensor | slice) -> FlowPosterior:
        return FlowPosterior(self.base.select(rows), self.transform)


def standard(
    shape: tuple[int, ...], family: Family = "normal", like: Tensor | None = None
) -> Diagonal:
    kw = {} if like is None else {"dtype": like.dtype, "device": like.device}
    return Diagonal(torch.zeros(shape, **kw), torch.ones(shape, **kw), family)


def log_mean_exp(x: Tensor, dim: int = 0) -> Tensor:
    return torch.logsumexp(x, dim) - math.log(x.shape[dim])
