"""me_mVAE (multi-view-AE's "multi-ELBO" MVAE, after Wu & Goodman 2018): the joint ELBO plus
every modality's own ELBO.

Loss per sample = −log p(X | z) + β KL(q(z|X) ‖ p) + Σ_m [−log p(x_m | z_m) + β KL(q(z|x_m) ‖ p)],
z ~ q(z|X), z_m ~ q(z|x_m); each unimodal ELBO reconstructs only its own modality. q(z|X) joins
the experts as multi-view-AE does: `join_type="poe"` a product without a prior expert, `"mean"`
the mean of their means and of their log-variances. multi-view-AE's `weight_kld` is β here (the
same weight on every KL term).

Incomplete data: X is the sample's observed modalities, both in the joint term and in the fusion,
and only observed modalities contribute a unimodal ELBO.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import mean_of_experts, product_of_experts
from core.models.optimization import LossOutput


class MeMVAEConfig(ModelConfig):
    model_type: str = "me_mvae"
    join_type: Literal["poe", "mean"] = Field(
        "poe", description="poe: product of the experts (no prior expert); mean: their average"
    )


class MeMVAE(MultimodalVAE):
    model_type = "me_mvae"
    config_class = MeMVAEConfig
    config: MeMVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        if self.config.join_type == "mean":
            return mean_of_experts(experts.loc, experts.scale, mask)
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        experts = experts.shared
        q = self.posterior(batch, observed, experts)
        rec_joint = sum(self.log_likelihoods(self.decoder_outputs(q.rsample(1)), batch).values())
        own = experts.rsample(1)[0]  # [M, B, D]
        rec_own = sum(
            self.log_likelihoods(self.decoder_outputs(own[i : i + 1], [m]), batch)[m]
            for i, m in enumerate(self.names)
        )
        kl_joint = kl_divergence(q, self.prior())
        kl_own = (kl_divergence(experts, self.prior()) * observed.to(kl_joint.dtype)).sum(0)
        beta = self.config.beta
        loss = -(rec_joint + rec_own)[0] + beta * (kl_joint + kl_own)
        return LossOutput(
            loss.mean(),
            {
                "rec_joint": -rec_joint[0].mean().detach(),
                "rec_unimodal": -rec_own[0].mean().detach(),
                "kl_joint": kl_joint.mean().detach(),
                "kl_unimodal": kl_own.mean().detach(),
            },
        )
