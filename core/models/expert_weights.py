"""Learnable per-modality, per-dimension expert weights for a generalised product of experts
(Cao & Fleet 2014), shared by the models that fuse with one (gpoe, weighted_dmvae).

The weights [M, latent_dim] start at 1/M and stay in [0, 1]: they are read clamped, and after
every optimiser step the stored values are projected back into [0, 1] (multi-view-AE clamps them
in place), so a weight pushed past a bound by one step can come back.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from core.models.base import MultimodalVAE
from core.models.config import ModelConfig
from core.models.optimization import LossOutput, Optimizers


class LearnedExpertWeights(MultimodalVAE):
    """Mixin (list it before the model's base class): adds `expert_weights` and `weights()`."""

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__(config)
        n = len(self.names)
        self.expert_weights = nn.Parameter(torch.full((n, self.latent_dim), 1.0 / n))

    def weights(self) -> Tensor:
        """The expert weights, read in [0, 1]."""
        return self.expert_weights.clamp(0.0, 1.0)

    def training_step(self, batch: Any, optimizers: Optimizers) -> LossOutput:
        """A step, then the stored weights projected back into [0, 1]."""
        out = super().training_step(batch, optimizers)
        with torch.no_grad():
            self.expert_weights.clamp_(0.0, 1.0)
        return out
