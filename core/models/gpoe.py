"""gPoE (multi-view-AE's weighted_mVAE; Cao & Fleet 2014, Lawry Aguila et al. 2023): a
generalised product of experts with learnable per-modality, per-dimension weights.

q(z|X): precision T = Σ_m w_{m,d} / σ²_{m,d}, mean = Σ_m w_{m,d} μ_{m,d} / σ²_{m,d} / T, no prior
expert; w [M, latent_dim] starts at 1/M and is kept in [0, 1] (core/models/expert_weights.py).
Loss per sample = β KL(q(z|X) ‖ p) − (1/M) Σ_m log p(x_m | z), z ~ q(z|X).

Optional private latents (`modalities_specific_dim`, upstream's `private`): x_m is decoded
from [z, w_m] and the loss gains β (1/M) Σ_m KL(q(w_m|x_m) ‖ p), as upstream.

Incomplete data: a missing modality's expert gets weight 0 in the product and M is the number of
modalities the sample has.
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.expert_weights import LearnedExpertWeights
from core.models.fusion import product_of_experts
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput


class GPoEConfig(ModelConfig):
    model_type: str = "gpoe"
    modalities_specific_dim: int | None = Field(
        None, ge=1, description="size of each modality's private latent (None: none)"
    )


class GPoE(LearnedExpertWeights, MultimodalVAE):
    model_type = "gpoe"
    config_class = GPoEConfig
    config: GPoEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, False, self.weights())

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        q = self.posterior(batch, observed, experts.shared)
        codes = {SHARED: q.rsample(1), **self.private_draws(experts, 1)}
        rec = sum(self.log_likelihoods(self.decoder_outputs(Latent(codes)), batch).values())[0]
        kl = kl_divergence(q, self.prior())
        n = observed.sum(0).to(kl.dtype)
        loss = -rec / n + self.config.beta * (kl + self.private_kl(experts, batch) / n)
        return LossOutput(loss.mean(), {"rec": -rec.mean().detach(), "kl": kl.mean().detach()})
