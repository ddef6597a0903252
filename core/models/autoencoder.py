"""Deterministic encoders, shared by the autoencoder families (AE, DCCAE, mAAE, mWAE).

Each modality's encoder gives a code, not a distribution. The code is held as a posterior of
zero scale, so encoding, generation, latent samplers, augmentation and the service treat it as
any other (its scale reads 0) and draws cost nothing. Such a model defines no likelihood p(x)
(`deterministic`); without an adversarial prior it has no prior either (`has_prior`), and its
unconditional samples come from a latent sampler fitted on its codes.

Representation given several modalities: the mean of their codes, per sample.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.data.batch import Batch
from core.models.base import MultimodalVAE
from core.models.distributions import Diagonal, Posterior
from core.models.fusion import mean_of_experts


class Autoencoder(MultimodalVAE):
    """Base of the deterministic models: code-giving encoders, mean-of-codes fusion."""

    deterministic = True
    has_prior = False

    def encoder_output_size(self, modality: str) -> int:
        return self.latent_dim

    def split_encoding(self, m: str, out: Tensor) -> tuple[Diagonal, Diagonal | None]:
        return Diagonal(out, torch.zeros_like(out), self.posterior_family), None

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        codes = mean_of_experts(experts.loc, torch.ones_like(experts.loc), mask).loc
        return Diagonal(codes, torch.zeros_like(codes), self.posterior_family)
