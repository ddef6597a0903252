"""MVTCAE (Hwang et al., NeurIPS 2021): multi-view total correlation, PoE without a prior expert.

Loss per sample = ((M − α)/M)·rec + β·[(α/M) Σ_m KL(q(z|X) ‖ q(z|x_m)) + (1 − α) KL(q(z|X) ‖ p)].
Incomplete data: M is the number of modalities the sample has, X those modalities, and the sum
runs over them (a sample with one modality reduces to a β(1 − α)-weighted VAE).
"""

from __future__ import annotations

from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import product_of_experts
from core.models.optimization import LossOutput


class MVTCAEConfig(ModelConfig):
    model_type: str = "mvtcae"
    alpha: float = Field(0.1, ge=0, le=1, description="trade-off between the two KL terms")
    beta: float = Field(2.5, ge=0, description="weight of the regularisation")


class MVTCAE(MultimodalVAE):
    model_type = "mvtcae"
    config_class = MVTCAEConfig
    config: MVTCAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        experts = experts.shared
        q = product_of_experts(experts.loc, experts.scale, observed, prior_expert=False)
        z = q.rsample(1)
        rec = sum(self.log_likelihoods(self.decoder_outputs(z), batch).values())[0]
        kl_prior = kl_divergence(q, self.prior())
        per_expert = kl_divergence(Diagonal(q.loc.unsqueeze(0), q.scale.unsqueeze(0)), experts)
        kl_experts = (per_expert * observed.to(per_expert.dtype)).sum(0)
        n = observed.sum(0).to(rec.dtype)
        alpha, beta = self.config.alpha, self.config.beta
        loss = (n - alpha) / n * -rec + beta * (alpha / n * kl_experts + (1 - alpha) * kl_prior)
        return LossOutput(
            loss.mean(),
            {
                "rec": -rec.mean().detach(),
                "kl": kl_prior.mean().detach(),
                "kl_experts": kl_experts.mean().detach(),
            },
        )
