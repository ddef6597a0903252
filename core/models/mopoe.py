"""MoPoE-VAE (Sutter, Daunhawer & Vogt, ICLR 2021): mixture over the PoEs of modality subsets.

The joint posterior is a uniform mixture over every subset (default: all 2^M − 1) of the
modalities a sample has; each subset posterior is a PoE of its experts, with the prior expert
joined to the full subset only (MODELS.md). All subset PoEs come from one batched contraction.
Loss per sample: −rec(z) + β Σ_s w_s KL(q_s ‖ p) with z drawn from one mixture component per
sample (by default dealt out in balanced proportions across the batch, as the authors' code and
MultiVae do), plus β_style KL terms for the optional private (modality-specific) latents.

Encoding from a subset S of modalities (`encode`/`generate` given S, and a sample missing some
modalities) uses the mixture over the subsets of S, not MultiVae's PoE of S: it is the
posterior the objective trains for a sample whose observed set is S, so training on incomplete
data and inference from S agree; the PoE of S is one component of that mixture.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import mixture_of_subsets, subset_products, subsets_matrix
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput


class MoPoEConfig(ModelConfig):
    model_type: str = "mopoe"
    subsets: list[list[str]] | None = Field(
        None, description="modality subsets forming the mixture (default: all non-empty ones)"
    )
    beta_style: float = Field(1.0, ge=0, description="KL weight of the private latents")
    modalities_specific_dim: int | dict[str, int] | None = Field(
        None,
        description="size of the private latents: one size for every modality, or one per "
        "modality as MultiVae (a modality left out, or 0, has none); None: no private latents",
    )
    mixture_selection: Literal["stratified", "random"] = Field(
        "stratified",
        description="how each sample's mixture component is drawn in training: balanced across "
        "the batch (the authors' and MultiVae's code) or independently per sample",
    )

    @model_validator(mode="after")
    def _check_private_sizes(self) -> MoPoEConfig:
        sizes = self.modalities_specific_dim
        if isinstance(sizes, dict):
            unknown = set(sizes) - set(self.modality_names)
            if unknown or any(d < 0 for d in sizes.values()):
                raise ValueError(
                    f"modalities_specific_dim: sizes >= 0 for modalities of "
                    f"{sorted(self.modality_names)} (unknown: {sorted(unknown)})"
                )
        elif sizes is not None and sizes < 1:
            raise ValueError("modalities_specific_dim: a size of at least 1, or None")
        return self

    @model_validator(mode="after")
    def _check_subsets(self) -> MoPoEConfig:
        if self.subsets is not None:
            names = set(self.modality_names)
            for s in self.subsets:
                if not s or not set(s) <= names:
                    raise ValueError(f"subsets: {s} must be a non-empty list of {sorted(names)}")
        return self


class MoPoE(MultimodalVAE):
    model_type = "mopoe"
    config_class = MoPoEConfig
    config: MoPoEConfig

    def __init__(self, config: MoPoEConfig | dict) -> None:
        super().__init__(config)
        chosen = self.config.subsets
        index = None if chosen is None else [[self.index[m] for m in s] for s in chosen]
        subsets = subsets_matrix(len(self.names), index)
        self.register_buffer("subsets", subsets, persistent=False)
        self.register_buffer("prior_on", subsets.all(1), persistent=False)

    def _subset_posteriors(self, mask: Tensor, experts: Diagonal) -> tuple[Diagonal, Tensor]:
        joint, valid = subset_products(
            experts.loc, experts.scale, mask, self.subsets, self.prior_on
        )
        # with every subset, a sample with any modality (as datasets guarantee) has one; custom
        # subsets are checked (a host sync, so only then)
        if self.config.subsets is not None and not valid.any(0).all():
            raise ValueError("subsets: a sample has no subset made of its available modalities")
        return joint, valid

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return mixture_of_subsets(*self._subset_posteriors(mask, experts))

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        private = experts.private
        joint, valid = self._subset_posteriors(observed, experts.shared)
        mixture = mixture_of_subsets(joint, valid)
        if self.config.mixture_selection == "stratified":
            codes = {SHARED: mixture.stratified_rsample()}  # one component per sample
        else:
            codes = {SHARED: mixture.rsample(1)}
        codes.update(self.private_draws(experts, 1))
        rec = sum(self.log_likelihoods(self.decoder_outputs(Latent(codes)), batch).values())
        kl = kl_divergence(joint, self.prior())  # [S, B]
        w = valid.to(kl.dtype) / valid.sum(0).to(kl.dtype)
        kl = (kl * w).sum(0)
        kl_style = self.private_kl(experts, batch)
        loss = (-rec[0] + self.config.beta * kl + self.config.beta_style * kl_style).mean()
        metrics = {"rec": -rec.mean().detach(), "kl": kl.mean().detach()}
        if private:
            metrics["kl_style"] = kl_style.mean().detach()
        return LossOutput(loss, metrics)
