"""`PriorSampler`: latents from the model's own prior p(z) (and p(w_m) for private latents)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from core.models.base import MultimodalVAE
from core.models.distributions import standard
from core.samplers.base import Density, Sampler, SamplerOptions


class PriorOptions(SamplerOptions):
    family: Literal["normal", "laplace"] = "normal"  # taken from the model at fit


class PriorDensity(Density):
    """Standard Normal or Laplace: nothing to fit, nothing to store."""

    options: PriorOptions

    def _dist(self, like: Tensor | None = None):
        return standard((self.dim,), self.options.family, like)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        like = torch.empty(0, device=generator.device) if generator is not None else None
        return self._dist(like).rsample(n, generator)

    def log_prob(self, z: Tensor) -> Tensor:
        return self._dist(z).log_prob(z)


class PriorSampler(Sampler):
    """The model's prior; `fit(model)` needs no dataset."""

    name = "prior"
    options_class = PriorOptions
    needs_data = False
    options: PriorOptions

    def prepare(self, model: MultimodalVAE) -> None:
        self.options = PriorOptions(family=model.posterior_family)

    def density(self, dim: int) -> Density:
        return PriorDensity(dim, self.options)
