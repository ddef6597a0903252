"""CRMVAE (MultiVae's consistency-regularised multimodal VAE): PoE without a prior expert, each
modality reconstructed from the joint code and from its own unimodal code.

Loss per sample = −Σ_m [log p(x_m | z) + log p(x_m | z_m)] / (2(M + 1))
                 + β [KL(q(z|X) ‖ p) + Σ_m KL(q(z|X) ‖ q(z|x_m))] / (M + 1),
z ~ q(z|X) (PoE of the sample's experts), z_m ~ q(z|x_m), the sums over the sample's modalities.

Incomplete data: M is the number of modalities the sample has and X those modalities, so a
sample missing some is weighed as the complete problem on its own modalities. (MultiVae keeps M
the model's number of modalities in both denominators, which downweighs incomplete samples; on
complete data the two agree.)
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


class CRMVAEConfig(ModelConfig):
    model_type: str = "crmvae"
    beta: float = Field(2.5, ge=0, description="weight of the divergence terms (MultiVae: 2.5)")


class CRMVAE(MultimodalVAE):
    model_type = "crmvae"
    config_class = CRMVAEConfig
    config: CRMVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        experts = experts.shared
        q = product_of_experts(experts.loc, experts.scale, observed, prior_expert=False)
        rec_joint = sum(self.log_likelihoods(self.decoder_outputs(q.rsample(1)), batch).values())
        own = experts.rsample(1)[0]  # [M, B, D]: each modality's code from its own expert
        rec_own = sum(
            self.log_likelihoods(self.decoder_outputs(own[i : i + 1], [m]), batch)[m]
            for i, m in enumerate(self.names)
        )
        kl_prior = kl_divergence(q, self.prior())
        per_expert = kl_divergence(Diagonal(q.loc.unsqueeze(0), q.scale.unsqueeze(0)), experts)
        kl_experts = (per_expert * observed.to(per_expert.dtype)).sum(0)
        n = observed.sum(0).to(kl_prior.dtype)
        rec = (rec_joint + rec_own)[0]
        loss = -rec / (2 * (n + 1)) + self.config.beta * (kl_prior + kl_experts) / (n + 1)
        return LossOutput(
            loss.mean(),
            {
                "rec_joint": -rec_joint[0].mean().detach(),
                "rec_unimodal": -rec_own[0].mean().detach(),
                "kl": kl_prior.mean().detach(),
                "kl_experts": kl_experts.mean().detach(),
            },
        )
