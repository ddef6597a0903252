"""MMVAE+ (Palumbo, Daunhawer & Vogt, ICLR 2023): MMVAE's mixture of experts over a shared
latent u, plus a private latent w_m per modality, with learnable auxiliary priors r_m.

For each available modality m, K draws u ~ q(u|x_m), w_m ~ q(w_m|x_m) are scored with
    log ω = Σ_n λ_n log p(x_n | u, w̃_n) + β [log p(u, w_m) − log q_MoE(u|X) − log q(w_m|x_m)],
w̃_m = w_m for x_m itself and, for every other modality n, a draw of r_n (cross-modal
reconstruction sees no private code of its source); p is the prior over [u, w] (learnable scale
with `learn_shared_prior`), r_n learnable with `learn_modality_prior`. The bound averages the
per-expert IWAE estimates outside the log ("looser", as MMVAE). `dreg_looser` is the doubly
reparameterised estimator with the posterior parameters detached inside log q, as this
project's MMVAE (MultiVae's MMVAE+ re-weights the gradients but keeps them attached, which its
own comment doubts); `iwae_looser` the plain bound.

Posterior families: `laplace_with_softmax` (scale = softmax(raw)·D + 1e-6, the paper's),
`normal_with_softplus` (σ = softplus(raw) + 1e-6) and `normal` (σ = exp(raw/2)).
Generation: u from the mixture of the given experts; the private code of a modality not given
is drawn from r_m (`reconstruction_option="single_prior"`, the distribution cross-modal
reconstruction is trained with) or from p's private part (`"joint_prior"`). Unconditional
samples and the likelihood estimate use p, the generative model's prior, either way (as the
paper and MultiVae's `generate_from_prior`).

Incomplete data: the mixture, the average over experts and the reconstructions run over the
sample's observed modalities.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Family, Posterior, log_mean_exp
from core.models.fusion import mixture_of_experts
from core.models.latents import SHARED, Latent, private_space
from core.models.optimization import LossOutput

_SCALE_EPS = 1e-6


class MMVAEPlusConfig(ModelConfig):
    model_type: str = "mmvae_plus"
    K: int = Field(10, ge=1, le=1000, description="importance samples per expert")
    loss: Literal["dreg_looser", "iwae_looser"] = "dreg_looser"
    prior_and_posterior_dist: Literal["laplace_with_softmax", "normal_with_softplus", "normal"] = (
        "laplace_with_softmax"
    )
    learn_shared_prior: bool = Field(False, description="learn the scale of p(u, w)")
    learn_modality_prior: bool = Field(True, description="learn the scales of the r_m")
    modalities_specific_dim: int = Field(2, ge=1, description="size of each private latent")
    reconstruction_option: Literal["single_prior", "joint_prior"] = Field(
        "single_prior",
        description="where the private code of a modality not given comes from at generation: "
        "its auxiliary prior r_m, or the private part of p",
    )


class MMVAEPlus(MultimodalVAE):
    model_type = "mmvae_plus"
    config_class = MMVAEPlusConfig
    config: MMVAEPlusConfig

    def __init__(self, config: MMVAEPlusConfig | dict) -> None:
        super().__init__(config)
        p = self.config.modalities_specific_dim
        # zeros: Laplace(0, 1) through softmax·D, N(0, 1) through exp(raw/2) (softplus: 0.69)
        self.joint_prior_raw = nn.Parameter(
            torch.zeros(self.latent_dim + p), requires_grad=self.config.learn_shared_prior
        )
        self.modality_prior_raw = nn.ParameterDict(
            {
                m: nn.Parameter(torch.zeros(p), requires_grad=self.config.learn_modality_prior)
                for m in self.names
            }
        )

    @property
    def posterior_family(self) -> Family:  # type: ignore[override]
        laplace = self.config.prior_and_posterior_dist == "laplace_with_softmax"
        return "laplace" if laplace else "normal"

    def expert_scale(self, raw: Tensor) -> Tensor:
        kind = self.config.prior_and_posterior_dist
        if kind == "laplace_with_softmax":
            return torch.softmax(raw, dim=-1) * raw.shape[-1] + _SCALE_EPS
        if kind == "normal_with_softplus":
            return F.softplus(raw) + _SCALE_EPS
        return super().expert_scale(raw)

    def joint_prior(self) -> tuple[Diagonal, Diagonal]:
        """p(u, w) split into its shared [D] and private [P] parts (one scale vector: under
        softmax scaling the two parts share one normalisation, as upstream)."""
        scale = self.expert_scale(self.joint_prior_raw)
        d = self.latent_dim
        family = self.posterior_family
        return (
            Diagonal(torch.zeros_like(scale[:d]), scale[:d], family),
            Diagonal(torch.zeros_like(scale[d:]), scale[d:], family),
        )

    def modality_prior(self, modality: str) -> Diagonal:
        """r_m: the auxiliary prior cross-modal reconstruction draws x_m's private code from."""
        scale = self.expert_scale(self.modality_prior_raw[modality])
        return Diagonal(torch.zeros_like(scale), scale, self.posterior_family)

    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Diagonal:
        """p's shared or private part: the generative model's prior (r_m is auxiliary)."""
        shared, private = self.joint_prior()
        return shared if space == SHARED else private

    def absent_private(self, modality: str) -> Diagonal:
        if self.config.reconstruction_option == "single_prior":
            return self.modality_prior(modality)
        return self.prior(private_space(modality))

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return mixture_of_experts(experts.loc, experts.scale, mask, self.posterior_family)

    def log_code_prior(self, u: Tensor, w: Tensor) -> Tensor:
        """log p(u, w) [K, B] of a shared code u [K, B, D] and a private code w [K, B, P], the
        prior term of the importance weight."""
        p_shared, p_private = self.joint_prior()
        return p_shared.log_prob(u) + p_private.log_prob(w)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        shared, private = experts.shared, experts.private
        k, b = self.config.K, shared.loc.shape[1]
        dreg = self.training and self.config.loss == "dreg_looser"
        scored = shared.detach() if dreg else shared
        proposal = mixture_of_experts(scored.loc, scored.scale, observed, self.posterior_family)
        u = shared.rsample(k).transpose(0, 1)  # [M, K, B, D]
        own = torch.stack([private[m].rsample(k) for m in self.names])  # [M, K, B, P]
        r = {n: self.modality_prior(n) for n in self.names}
        cross = {  # r_n draws for decoding x_n from another modality's u
            n: Diagonal(r[n].loc.expand(b, -1), r[n].scale.expand(b, -1)).rsample(k)
            for n in self.names
        }
        n_mod = len(self.names)
        flat_u = u.reshape(n_mod * k, b, -1)
        flat_own = own.reshape(n_mod * k, b, -1)
        codes = {SHARED: flat_u}
        for j, n in enumerate(self.names):  # x_n reads its own code from source n, r_n's else
            per_source = [own[j] if i == j else cross[n] for i in range(n_mod)]
            codes[private_space(n)] = torch.cat(per_source)  # [M*K, B, P]
        # one decoder pass per target over every source's draws (M passes, not M²)
        outs = self.decoder_outputs(Latent(codes))
        rec = sum(self.log_likelihoods(outs, batch).values())  # [M*K, B]
        q_w = [private[m].detach() if dreg else private[m] for m in self.names]
        log_q_w = torch.stack([q.log_prob(own[i]) for i, q in enumerate(q_w)])  # [M, K, B]
        log_p = self.log_code_prior(flat_u, flat_own)
        log_q = proposal.log_prob(flat_u) + log_q_w.reshape(n_mod * k, b)
        log_w_all = (rec + self.config.beta * (log_p - log_q)).view(n_mod, k, b)
        weight = observed.to(log_w_all.dtype) / observed.sum(0).to(log_w_all.dtype)  # [M, B]
        iwae = (log_mean_exp(log_w_all, dim=1) * weight).sum(0)
        if dreg:
            with torch.no_grad():
                w_tilde = torch.softmax(log_w_all, dim=1)  # [M, K, B]
            for codes in (u, own):
                if codes.requires_grad:
                    codes.register_hook(lambda grad: grad * w_tilde.unsqueeze(-1))
            loss = -((w_tilde * log_w_all).sum(1) * weight).sum(0).mean()
        else:
            loss = -iwae.mean()
        return LossOutput(loss, {"iwae_looser": iwae.mean().detach()})
