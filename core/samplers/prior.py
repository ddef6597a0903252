"""`PriorSampler`: the model's own priors, in every latent space (learned ones included)."""

from __future__ import annotations

from core.samplers.base import Density, Sampler


class PriorSampler(Sampler):
    """Covers no space, so `model.sample` draws every space from the model's prior; needs no
    data. It names the default in APIs that take a sampler by name ("prior")."""

    name = "prior"
    needs_data = False

    def density(self, dim: int) -> Density:
        raise ValueError("prior sampler: has no densities; the model draws from its priors")
