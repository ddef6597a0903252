"""MMVAE (Shi et al., NeurIPS 2019): per-sample mixture of experts, stratified IWAE/DReG bound.

For each available modality m, K draws z ~ q(z|x_m) are scored with the mixture as proposal:
log w = Σ_n λ_n log p(x_n|z) + β [log p(z) − log q_MoE(z|X)], and the bound averages the
per-expert IWAE estimates outside the log ("looser" bound). DReG detaches the posterior
parameters inside log q and re-weights the gradient reaching z by the normalised weights squared
(Tucker et al., 2019), as the authors' code does.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Family, Posterior, log_mean_exp
from core.models.fusion import mixture_of_experts
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput

_SCALE_EPS = 1e-6


class MMVAEConfig(ModelConfig):
    model_type: str = "mmvae"
    K: int = Field(10, ge=1, le=1000, description="importance samples per expert")
    loss: Literal["dreg_looser", "iwae_looser"] = "dreg_looser"
    prior_and_posterior_dist: Literal["laplace_with_softmax", "normal"] = "laplace_with_softmax"
    learn_prior: bool = Field(True, description="learn the prior's scale")


class MMVAE(MultimodalVAE):
    model_type = "mmvae"
    config_class = MMVAEConfig
    config: MMVAEConfig

    def __init__(self, config: MMVAEConfig | dict) -> None:
        super().__init__(config)
        # zeros give Laplace(0, 1) through softmax·D and N(0, 1) through exp(0.5·logvar)
        self.prior_raw_scale = nn.Parameter(
            torch.zeros(self.latent_dim), requires_grad=self.config.learn_prior
        )

    @property
    def posterior_family(self) -> Family:  # type: ignore[override]
        laplace = self.config.prior_and_posterior_dist == "laplace_with_softmax"
        return "laplace" if laplace else "normal"

    def expert_scale(self, raw: Tensor) -> Tensor:
        if self.config.prior_and_posterior_dist == "laplace_with_softmax":
            return torch.softmax(raw, dim=-1) * raw.shape[-1] + _SCALE_EPS
        return super().expert_scale(raw)

    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Diagonal:
        scale = self.expert_scale(self.prior_raw_scale)
        return Diagonal(torch.zeros_like(scale), scale, self.posterior_family)

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return mixture_of_experts(experts.loc, experts.scale, mask, self.posterior_family)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        experts = experts.shared
        n_mod, k = len(self.names), self.config.K
        dreg = self.training and self.config.loss == "dreg_looser"
        z = experts.rsample(k)  # [K, M, B, D]: K draws from every expert
        z = z.transpose(0, 1)  # [M, K, B, D]
        b, d = z.shape[2], z.shape[3]
        proposal = mixture_of_experts(
            *(experts.detach().loc, experts.detach().scale)
            if dreg
            else (experts.loc, experts.scale),
            observed,
            self.posterior_family,
        )
        flat = z.reshape(n_mod * k, b, d)
        log_q = proposal.log_prob(flat)  # [M*K, B]
        log_p = self.prior().log_prob(flat)
        rec = sum(self.log_likelihoods(self.decoder_outputs(flat), batch).values())
        log_w = (rec + self.config.beta * (log_p - log_q)).view(n_mod, k, b)
        weight = observed.to(log_w.dtype) / observed.sum(0).to(log_w.dtype)  # [M, B]
        iwae = (log_mean_exp(log_w, dim=1) * weight).sum(0)  # [B]
        if dreg:
            with torch.no_grad():
                w_tilde = torch.softmax(log_w, dim=1)  # [M, K, B]
            if z.requires_grad:
                z.register_hook(lambda grad: grad * w_tilde.unsqueeze(-1))
            surrogate = ((w_tilde * log_w).sum(1) * weight).sum(0)
            loss = -surrogate.mean()
        else:
            loss = -iwae.mean()
        return LossOutput(loss, {"iwae_looser": iwae.mean().detach(), "rec": -rec.mean().detach()})
