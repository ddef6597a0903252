"""gPoE (multi-view-AE's weighted_mVAE; Cao & Fleet 2014, Lawry Aguila et al. 2023): a
generalised product of experts with learnable per-modality, per-dimension weights.

q(z|X): precision T = Σ_m w_{m,d} / σ²_{m,d}, mean = Σ_m w_{m,d} μ_{m,d} / σ²_{m,d} / T, no prior
expert; w [M, latent_dim] starts at 1/M and is kept in [0, 1] (core/models/expert_weights.py).
Loss per sample = β KL(q(z|X) ‖ p) − (1/M) Σ_m log p(x_m | z), z ~ q(z|X).

Incomplete data: a missing modality's expert gets weight 0 in the product and M is the number of
modalities the sample has. (Upstream's private-latent option is not implemented here.)
"""

from __future__ import annotations

from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.expert_weights import LearnedExpertWeights
from core.models.fusion import product_of_experts
from core.models.optimization import LossOutput


class GPoEConfig(ModelConfig):
    model_type: str = "gpoe"


class GPoE(LearnedExpertWeights, MultimodalVAE):
    model_type = "gpoe"
    config_class = GPoEConfig
    config: GPoEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, False, self.weights())

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        q = self.posterior(batch, observed, experts.shared)
        rec = sum(self.log_likelihoods(self.decoder_outputs(q.rsample(1)), batch).values())[0]
        kl = kl_divergence(q, self.prior())
        n = observed.sum(0).to(kl.dtype)
        loss = -rec / n + self.config.beta * kl
        return LossOutput(loss.mean(), {"rec": -rec.mean().detach(), "kl": kl.mean().detach()})
