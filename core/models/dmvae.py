"""DMVAE (Lee & Pavlovic, CVPR-W 2021): a shared latent z fused by a PoE with the prior expert,
plus a private latent w_m per modality; the joint ELBO plus one cross ELBO per modality.

Negative ELBO of a shared posterior q_t: −Σ_k log p(x_k | z_t, w_k) + β KL(q_t ‖ p)
+ Σ_k β_k KL(q(w_k|x_k) ‖ p), z_t ~ q_t, each w_k ~ q(w_k|x_k) drawn afresh per ELBO.
Loss per sample = −ELBO(q(z|X)) − Σ_m ELBO(q(z|x_m)): the joint ELBO's q(z|X) is the PoE of the
sample's experts and the prior; in the cross ELBO of modality m the shared code comes from x_m's
expert alone and every modality is decoded with its own private code (as MultiVae).

Incomplete data: sums over k run over the sample's observed modalities, and a missing modality
has no cross ELBO. Inference from the modalities given: their PoE with the prior expert, except a
sample given exactly one modality, which uses that expert alone (MultiVae's rule, and the
posterior its cross ELBO trains); a private latent of a modality not given is drawn from its
prior.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import product_of_experts
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput


class DMVAEConfig(ModelConfig):
    model_type: str = "dmvae"
    modalities_specific_dim: int | dict[str, int] = Field(
        2, description="size of each modality's private latent: one size, or one per modality"
    )
    modalities_specific_betas: dict[str, float] | None = Field(
        None, description="KL weight of each modality's private latent (default 1 each)"
    )

    @model_validator(mode="after")
    def _check_modalities(self) -> DMVAEConfig:
        self.check_modality_sizes("modalities_specific_dim")
        self.check_modality_weights("modalities_specific_betas")
        return self


class DMVAE(MultimodalVAE):
    model_type = "dmvae"
    config_class = DMVAEConfig
    config: DMVAEConfig

    def fuse(self, experts: Diagonal, mask: Tensor) -> Diagonal:
        """The shared posterior of the experts marked in `mask`: their PoE with the prior."""
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=True)

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        joint = self.fuse(experts, mask)
        alone = product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)
        single = (mask.sum(0) == 1).unsqueeze(-1)
        return Diagonal(
            torch.where(single, alone.loc, joint.loc),
            torch.where(single, alone.scale, joint.scale),
            "normal",
        )

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        shared = experts.shared
        joint = self.fuse(shared, observed)
        # T = 1 + M shared posteriors: the joint one, then each expert alone
        q = Diagonal(
            torch.cat([joint.loc.unsqueeze(0), shared.loc]),
            torch.cat([joint.scale.unsqueeze(0), shared.scale]),
            "normal",
        )
        terms = len(q.loc)
        codes = {SHARED: q.rsample(1)[0]}  # [T, B, D]
        codes.update(self.private_draws(experts, terms))
        rec = sum(self.log_likelihoods(self.decoder_outputs(Latent(codes)), batch).values())
        kl_shared = kl_divergence(q, self.prior())  # [T, B]
        kl_private = self.private_kl(experts, batch, self.config.modalities_specific_betas)
        negative_elbo = -rec + self.config.beta * kl_shared + kl_private  # [T, B]
        weight = torch.cat([torch.ones_like(observed[:1]), observed]).to(negative_elbo.dtype)
        loss = (negative_elbo * weight).sum(0).mean()
        return LossOutput(
            loss,
            {
                "elbo_joint": -negative_elbo[0].mean().detach(),
                "rec_joint": -rec[0].mean().detach(),
                "kl_joint": kl_shared[0].mean().detach(),
                "kl_private": kl_private.mean().detach(),
            },
        )
