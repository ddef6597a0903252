"""`MAFSampler` and `IAFSampler`: masked autoregressive flows (zuko) fitted on posterior latents.

Both share one parameterisation, a stack of MADE-conditioned affine transforms (`zuko.flows.MAF`)
applied to standardised latents; they differ in direction. MAF maps latents to noise in one pass
(fast density, sampling sequential over D); IAF is its inverse (fast sampling, density sequential
over D, so fitting by maximum likelihood costs D network passes per step: fine for small D).
"""

from __future__ import annotations

import math

import torch
import zuko
from pydantic import Field
from torch import Tensor

from core.samplers.base import Density, Sampler, SamplerOptions, seed_from

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class FlowOptions(SamplerOptions):
    n_blocks: int = Field(4, ge=1, description="autoregressive transforms (MADE blocks)")
    hidden: list[int] = Field(default_factory=lambda: [64, 64], description="MADE hidden sizes")
    epochs: int = Field(100, ge=1, description="passes over the latents")
    lr: float = Field(1e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0, description="Adam weight decay")
    train_batch_size: int = Field(256, ge=1, description="latents per Adam step")


class FlowDensity(Density):
    """log p(z) = log N(T(u); 0, I) + log|det dT/du| - Σ log σ, with u = (z - μ) / σ."""

    inverse: bool = False  # False: MAF; True: IAF
    options: FlowOptions

    def __init__(self, dim: int, options: FlowOptions) -> None:
        super().__init__(dim, options)
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.flow = zuko.flows.MAF(
            dim, transforms=options.n_blocks, hidden_features=list(options.hidden)
        )

    def transform(self):
        """Latents (standardised) -> noise."""
        t = self.flow.transform()
        return t.inv if self.inverse else t

    def _log_prob_std(self, u: Tensor) -> Tensor:
        e, ladj = self.transform().call_and_ladj(u)
        return (-0.5 * e**2 - _HALF_LOG_2PI).sum(-1) + ladj

    def log_prob(self, z: Tensor) -> Tensor:
        return self._log_prob_std((z - self.shift) / self.scale) - self.scale.log().sum()

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(n, self.dim, generator=generator, device=self.shift.device)
        return self.transform().inv(eps) * self.scale + self.shift

    def fit(self, z: Tensor, generator: torch.Generator | None = None) -> None:
        o = self.options
        z = z.float().to(self.shift.device)
        self.shift.copy_(z.mean(0))
        self.scale.copy_(z.std(0).clamp_min(1e-6) if len(z) > 1 else torch.ones(self.dim))
        u = (z - self.shift) / self.scale
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_from(generator))  # reproducible initialisation
            self.flow = zuko.flows.MAF(
                self.dim, transforms=o.n_blocks, hidden_features=list(o.hidden)
            ).to(self.shift.device)
        optim = torch.optim.Adam(self.flow.parameters(), lr=o.lr, weight_decay=o.weight_decay)
        self.train()
        for _ in range(o.epochs):
            order = torch.randperm(len(u), generator=generator).to(u.device)
            for start in range(0, len(u), o.train_batch_size):
                loss = -self._log_prob_std(u[order[start : start + o.train_batch_size]]).mean()
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
        self.eval()


class IAFDensity(FlowDensity):
    inverse = True


class MAFSampler(Sampler):
    """Masked autoregressive flow per latent space: `n_blocks` MADE transforms of `hidden`."""

    name = "maf"
    options_class = FlowOptions
    options: FlowOptions

    def density(self, dim: int) -> Density:
        return FlowDensity(dim, self.options)


class IAFSampler(MAFSampler):
    """Inverse autoregressive flow per latent space: one network pass per sample."""

    name = "iaf"

    def density(self, dim: int) -> Density:
        return IAFDensity(dim, self.options)
