"""JMVAE (Suzuki, Nakayama & Matsuo, 2016): a joint encoder q(z|X) tied to unimodal encoders.

Incomplete data (MultiVae's JMVAE cannot train on it; this one can). The rule, per sample:
- all modalities observed: the JMVAE objective, rec(z ~ q(z|X)) and
  a(t)·[β KL(q(z|X) ‖ p) + α Σ_m KL(q(z|X) ‖ q(z|x_m))];
- some missing: the joint encoder cannot see the sample, so it trains the ELBO of its observed
  modalities under the posterior used at inference for that subset, the PoE of the observed
  unimodal experts: rec(z ~ q_sub) + a(t)·β KL(q_sub ‖ p).
Subset inference (`encode` with some modalities given) uses that same PoE; the joint encoder is
used for samples that have every modality.

The joint encoder follows MultiVae's default: per modality a network of the unimodal encoder's
architecture giving `latent_dim` features, concatenated, then an MLP [512, 512] to the mean and
log-variance (`joint_features`, `joint_encoder`, `joint_feature_activation` change it).
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import product_of_experts
from core.models.joint_encoder import JointEncoded, JointEncoderConfig
from core.models.optimization import LossOutput


class JMVAEConfig(JointEncoderConfig):
    model_type: str = "jmvae"
    alpha: float = Field(0.1, ge=0, description="weight of the KL(q(z|X) ‖ q(z|x_m)) terms")
    warmup: int = Field(10, ge=0, description="epochs over which a(t) grows from 0 to 1")


class JMVAE(JointEncoded, MultimodalVAE):
    model_type = "jmvae"
    config_class = JMVAEConfig
    config: JMVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return self.joint_or_subset(batch, mask, experts)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        complete = observed.all(0)  # [B]
        experts = experts.shared
        joint = self.joint_encode(batch)
        subset = product_of_experts(experts.loc, experts.scale, observed, prior_expert=False)
        # one draw from each posterior; a sample decodes only the draw its objective uses (the
        # joint one when complete, the subset one otherwise), so the decoders see B rows, not 2B
        both = Diagonal(
            torch.stack([joint.loc, subset.loc]), torch.stack([joint.scale, subset.scale])
        )
        drawn = both.rsample(1)[0]  # [2, B, D]
        z = torch.where(complete.unsqueeze(-1), drawn[0], drawn[1])
        rec = sum(self.log_likelihoods(self.decoder_outputs(z.unsqueeze(0)), batch).values())[0]
        prior = self.prior()
        kl_joint = kl_divergence(joint, prior)
        kl_subset = kl_divergence(subset, prior)
        per_expert = kl_divergence(
            Diagonal(joint.loc.unsqueeze(0), joint.scale.unsqueeze(0)), experts
        )  # [M, B]
        kl_experts = (per_expert * observed.to(per_expert.dtype)).sum(0)
        a = self.annealing(self.config.warmup)
        beta, alpha = self.config.beta, self.config.alpha
        joint_loss = -rec + a * (beta * kl_joint + alpha * kl_experts)
        subset_loss = -rec + a * beta * kl_subset
        loss = torch.where(complete, joint_loss, subset_loss).mean()
        return LossOutput(
            loss,
            {
                "rec": -rec.mean().detach(),
                "kl_joint": kl_joint.mean().detach(),
                "kl_experts": kl_experts.mean().detach(),
                "complete_fraction": complete.float().mean(),
            },
        )
