"""weighted DMVAE (multi-view-AE's weighted_DMVAE): DMVAE whose shared posterior is the
generalised PoE of gpoe, learnable per-modality, per-dimension expert weights in [0, 1] and no
prior expert, in place of the PoE with the prior.

Everything else is DMVAE's (core/models/dmvae.py): the joint ELBO plus one cross ELBO per
modality, private latents per modality, the same incomplete-data rule, and inference from one
given modality by its expert alone. (Upstream repeats the joint KL M times and the cross KLs M²
times; this follows DMVAE's ELBOs instead.)
"""

from __future__ import annotations

from torch import Tensor

from core.models.distributions import Diagonal
from core.models.dmvae import DMVAE, DMVAEConfig
from core.models.expert_weights import LearnedExpertWeights
from core.models.fusion import product_of_experts


class WeightedDMVAEConfig(DMVAEConfig):
    model_type: str = "weighted_dmvae"


class WeightedDMVAE(LearnedExpertWeights, DMVAE):
    model_type = "weighted_dmvae"
    config_class = WeightedDMVAEConfig
    config: WeightedDMVAEConfig

    def fuse(self, experts: Diagonal, mask: Tensor) -> Diagonal:
        """The generalised PoE of the experts marked in `mask` (no prior expert)."""
        return product_of_experts(experts.loc, experts.scale, mask, False, self.weights())
