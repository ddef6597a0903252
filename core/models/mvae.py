"""MVAE (Wu & Goodman, NeurIPS 2018): product of experts with a prior expert, sub-sampled ELBOs."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import product_of_experts, subsets_matrix
from core.models.optimization import LossOutput


class MVAEConfig(ModelConfig):
    model_type: str = "mvae"
    use_subsampling: bool = Field(True, description="add the unimodal ELBO of every modality")
    k: int = Field(
        0, ge=0, description="random subsets (size 2..M-1) whose ELBO is added per batch"
    )
    warmup: int = Field(10, ge=0, description="epochs over which β is annealed from 0")


class MVAE(MultimodalVAE):
    """Loss = -[ELBO(X) + Σ_m ELBO(x_m) + Σ_{k random S} ELBO(X_S)], mean over samples.

    Incomplete data: each term uses the modalities it names that the sample has; a term naming
    none of them contributes nothing. The KL weight is β·min(1, epoch / warmup).
    """

    model_type = "mvae"
    config_class = MVAEConfig
    config: MVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=True)

    def _terms(self) -> Tensor:
        """Bool [T, M]: the modality sets whose ELBOs enter the loss this step."""
        n = len(self.names)
        terms = [torch.ones(1, n, dtype=torch.bool)]
        if self.config.use_subsampling and n > 1:
            terms.append(torch.eye(n, dtype=torch.bool))
        middle = subsets_matrix(n)
        middle = middle[(middle.sum(1) > 1) & (middle.sum(1) < n)]
        if self.config.k and len(middle):
            pick = torch.randint(len(middle), (self.config.k,))
            terms.append(middle[pick])
        return torch.cat(terms).to(self.rec_weights.device)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        terms = self._terms()  # [T, M]
        term_masks = terms.unsqueeze(-1) & observed.unsqueeze(0)  # [T, M, B]
        shared = experts.shared
        q = product_of_experts(shared.loc, shared.scale, term_masks, prior_expert=True)
        z = q.rsample(1)[0]  # [T, B, D]: one draw per term and sample
        outs = self.decoder_outputs(z)
        rec = torch.zeros_like(z[..., 0])
        for m, lp in self.log_likelihoods(outs, batch).items():
            rec = rec + lp * term_masks[:, self.index[m]].to(lp.dtype)
        kl = kl_divergence(q, self.prior())  # [T, B]
        active = term_masks.any(1).to(kl.dtype)  # [T, B]
        beta = self.config.beta * self.annealing(self.config.warmup)
        elbo = (rec - beta * kl) * active
        loss = -elbo.sum(0).mean()
        return LossOutput(
            loss,
            {
                "rec_joint": -rec[0].mean().detach(),
                "kl_joint": kl[0].mean().detach(),
                "elbo_joint": (rec[0] - self.config.beta * kl[0]).mean().detach(),
            },
        )
