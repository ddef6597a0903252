"""mmJSD (Sutter, Daunhawer & Vogt, NeurIPS 2020): mixture-of-experts reconstruction with a
multimodal Jensen-Shannon regulariser towards a dynamic prior.

Loss per sample = −Σ_m log p(x_m | z) + α JS, z ~ q_MoE(z|X) (a per-sample draw from the uniform
mixture of the sample's experts), and, following the paper,
    JS = Σ_{j ∈ X ∪ {p}} π KL(q_j ‖ f),  π = 1/(M + 1),
f the dynamic prior: the π-weighted geometric mean (PoE with every precision times π) of the
experts and the prior p = N(0, I). Weighting every precision by the same π leaves the PoE's mean
and divides its precision by π, so f is the PoE with the prior expert, its scale times √(M + 1).
multi-view-AE differs. Without private latents it keeps this f but leaves the prior's KL out of
the sum (still dividing by M + 1), and its reconstruction mixture has the prior as one more
component: `js_form="multiview_ae"` gives that objective, and multi-view-AE's inference too: a
sample's posterior is f when it has two modalities or more, its single expert otherwise (the
paper form infers with the mixture of the given experts, as the authors' code). With private
latents multi-view-AE's f is the PoE of the experts alone, weighted 1/M; ours stays the above.

Optional private latents (`modalities_specific_dim`, upstream's `private`/`s_dim`): x_m is
decoded from [z, w_m], w_m ~ q(w_m|x_m), and β Σ_m KL(q(w_m|x_m) ‖ p) joins the loss (β weighs
only these, as upstream).

Incomplete data: X and M are the sample's observed modalities and their number, in the mixture,
the dynamic prior and the sums.
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import mixture_of_experts, product_of_experts
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput


class MMJSDConfig(ModelConfig):
    model_type: str = "mmjsd"
    alpha: float = Field(1.0, ge=0, description="weight of the Jensen-Shannon term")
    modalities_specific_dim: int | None = Field(
        None, ge=1, description="size of each modality's private latent (None: none)"
    )
    js_form: Literal["paper", "multiview_ae"] = Field(
        "paper",
        description="paper: the JS term sums π·KL over the experts and the prior, and the "
        "reconstruction draws from the experts' mixture; multiview_ae: multi-view-AE's, the "
        "prior's KL left out of the sum (still divided by M + 1) and the prior one more "
        "component of the reconstruction's mixture",
    )


class MMJSD(MultimodalVAE):
    model_type = "mmjsd"
    config_class = MMJSDConfig
    config: MMJSDConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        """Paper: the mixture of the given experts. multiview_ae: the dynamic prior f of the given
        experts, or the expert itself for a sample given one modality (multi-view-AE's encode)."""
        if self.config.js_form == "paper":
            return mixture_of_experts(experts.loc, experts.scale, mask, self.posterior_family)
        f = self.dynamic_prior(experts, mask)
        alone = product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)
        single = (mask.sum(0) == 1).unsqueeze(-1)
        loc = torch.where(single, alone.loc, f.loc)
        return Diagonal(loc, torch.where(single, alone.scale, f.scale), self.posterior_family)

    def dynamic_prior(self, experts: Diagonal, observed: Tensor) -> Diagonal:
        """f: the geometric mean, weights 1/(M + 1), of the observed experts and the prior."""
        poe = product_of_experts(experts.loc, experts.scale, observed, prior_expert=True)
        stretch = (observed.sum(0).to(poe.scale.dtype) + 1).sqrt().unsqueeze(-1)
        return Diagonal(poe.loc, poe.scale * stretch, "normal")

    def reconstruction_posterior(
        self, batch: Batch, observed: Tensor, experts: Diagonal
    ) -> Posterior:
        """What the training reconstruction draws from: the mixture of the sample's experts;
        with js_form="multiview_ae" the prior N(0, I) is one more component (multi-view-AE)."""
        with_prior = self.config.js_form == "multiview_ae"
        return mixture_of_experts(
            experts.loc, experts.scale, observed, self.posterior_family, with_prior
        )

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        shared = experts.shared
        codes = {SHARED: self.reconstruction_posterior(batch, observed, shared).rsample(1)}
        codes.update(self.private_draws(experts, 1))
        rec = sum(self.log_likelihoods(self.decoder_outputs(Latent(codes)), batch).values())[0]
        f = self.dynamic_prior(shared, observed)
        to_f = kl_divergence(shared, Diagonal(f.loc.unsqueeze(0), f.scale.unsqueeze(0)))
        from_prior = kl_divergence(self.prior(), f)  # [D] against [B, D]: broadcast
        n = observed.sum(0).to(rec.dtype)
        terms = (to_f * observed.to(rec.dtype)).sum(0)
        if self.config.js_form == "paper":  # multi-view-AE leaves the prior's term out
            terms = terms + from_prior
        js = terms / (n + 1)
        kl_private = self.private_kl(experts, batch)
        loss = -rec + self.config.alpha * js + self.config.beta * kl_private
        metrics = {"rec": -rec.mean().detach(), "jsd": js.mean().detach()}
        if experts.private:
            metrics["kl_private"] = kl_private.mean().detach()
        return LossOutput(loss.mean(), metrics)
