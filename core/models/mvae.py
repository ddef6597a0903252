"""MVAE (Wu & Goodman, NeurIPS 2018): product of experts with a prior expert, sub-sampled ELBOs;
with multi-view-AE's options, the experts averaged instead (`join_type="mean"`), multiplied
without the prior expert (`use_prior=False`), or made sparse (`sparse`: variational-dropout
experts with σ² = α μ², one learnable log α per latent dimension shared by the modalities as
mcVAE, the Molchanov KL approximation in place of the KL to the prior, and dimensions whose
dropout rate reaches `threshold` zeroed at prediction)."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts
from core.models.distributions import Diagonal, Posterior
from core.models.fusion import mean_of_experts, product_of_experts, subsets_matrix
from core.models.optimization import LossOutput
from core.models.sparse import SparseConfig, SparseLatent


class MVAEConfig(SparseConfig):
    model_type: str = "mvae"
    use_subsampling: bool = Field(True, description="add the unimodal ELBO of every modality")
    k: int = Field(
        0,
        ge=0,
        description="random subsets (size 2..M-1, distinct; all of them when there are fewer) "
        "whose ELBO is added per training batch, with use_subsampling",
    )
    warmup: int = Field(10, ge=0, description="epochs over which β is annealed from 0")
    join_type: Literal["poe", "mean"] = Field(
        "poe",
        description="poe: product of the experts; mean: the average of their means and "
        "log-variances (multi-view-AE's mVAE option)",
    )
    use_prior: bool = Field(
        True, description="join the N(0, I) prior expert to the product (poe only)"
    )
    annealing: Literal["per_step", "per_epoch"] = Field(
        "per_step",
        description="per_step: β·progress/warmup, from 0 at the first step (MultiVae); per_epoch: "
        "β·epoch/warmup, from β/warmup in the first epoch (this project before 2026-12)",
    )


class MVAE(SparseLatent):
    """Loss = -[ELBO(X) + Σ_m ELBO(x_m) + Σ_{k random S} ELBO(X_S)], mean over samples.

    Incomplete data: each term uses the modalities it names that the sample has; a term naming
    none of them contributes nothing. The KL weight is β·min(1, t / warmup), t the epochs done
    counting every step (MultiVae's schedule, from 0): starting at β/warmup instead, as the
    `per_epoch` option does, collapsed the posterior on digits (bench/compare).
    """

    model_type = "mvae"
    config_class = MVAEConfig
    config: MVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return self._join(experts, mask)

    def _join(self, experts: Diagonal, mask: Tensor) -> Diagonal:
        """The joint posterior of the experts marked in `mask` ([M, B], or [T, M, B] for T
        modality sets at once)."""
        if self.config.join_type == "mean":
            return mean_of_experts(experts.loc, experts.scale, mask)
        return product_of_experts(experts.loc, experts.scale, mask, self.config.use_prior)

    def __init__(self, config: MVAEConfig | dict) -> None:
        super().__init__(config)
        n = len(self.names)
        with torch.device("cpu"):  # constants, also when the model is built on "meta"
            middle = subsets_matrix(n)
            middle = middle[(middle.sum(1) > 1) & (middle.sum(1) < n)]
            fixed = [torch.ones(1, n, dtype=torch.bool)]
            if self.config.use_subsampling and n > 1:
                fixed.append(torch.eye(n, dtype=torch.bool))
        fixed_terms = torch.cat(fixed)
        self.register_buffer("middle", middle, persistent=False)
        self.register_buffer("fixed_terms", fixed_terms, persistent=False)
        # [M, R]: per modality, the fixed terms that hold it (the joint set, its unimodal one)
        rows = [fixed_terms[:, i].nonzero().flatten() for i in range(n)]
        self.register_buffer("fixed_rows", torch.stack(rows), persistent=False)

    def _terms(self) -> Tensor:
        """Bool [T, M]: the modality sets whose ELBOs enter the loss this step: the joint set,
        and with use_subsampling each modality and, while training, k distinct random subsets
        (drawn without replacement, as MultiVae does)."""
        sampled = self.config.use_subsampling and self.config.k and self.training
        if not sampled or not len(self.middle):
            return self.fixed_terms
        pick = torch.randperm(len(self.middle))[: self.config.k]
        return torch.cat([self.fixed_terms, self.middle[pick.to(self.middle.device)]])

    def _reconstruction(self, z: Tensor, batch: Batch, term_masks: Tensor) -> Tensor:
        """Σ_m λ_m log p(x_m | z_t) [T, B] over the modalities each term t holds. A decoder
        decodes only the terms that can hold its modality: the fixed ones that do (a unimodal
        term holds one modality, so decoding every term would waste (M-1)/(M+1) of them) and
        every sampled subset (their count is fixed, their members drawn: masked as before)."""
        sampled = torch.arange(len(self.fixed_terms), len(z), device=z.device)
        rec = torch.zeros_like(z[..., 0])
        for m in self.generated:
            i = self.index[m]
            rows = torch.cat([self.fixed_rows[i], sampled])
            (lp,) = self.log_likelihoods(self.decoder_outputs(z[rows], [m]), batch).values()
            values = lp * term_masks[rows, i].to(lp.dtype)
            rec = rec.to(torch.promote_types(rec.dtype, values.dtype))  # as `rec + values`
            rec = rec.index_add(0, rows, values.to(rec.dtype))
        return rec

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        terms = self._terms()  # [T, M]
        term_masks = terms.unsqueeze(-1) & observed.unsqueeze(0)  # [T, M, B]
        q = self._join(experts.shared, term_masks)
        z = q.rsample(1)[0]  # [T, B, D]: one draw per term and sample
        rec = self._reconstruction(z, batch, term_masks)
        kl = self.shared_kl(q)  # [T, B]
        active = term_masks.any(1).to(kl.dtype)  # [T, B]
        per_step = self.config.annealing == "per_step"
        beta = self.config.beta * self.annealing(self.config.warmup, per_step)
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
