"""Sparse (variational-dropout) shared latents, as mcVAE (Antelmi et al. 2019) defines them and
multi-view-AE offers on its models: every expert's variance is α μ², with one learnable log α per
latent dimension shared by the modalities; the KL to the prior is replaced by Molchanov et al.'s
approximation (`sparse_kl`), and dimensions whose dropout rate α/(1+α) reaches `threshold` are
zeroed at prediction (the kept ones are listed by `kept_dimensions`).
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Draw, Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, kl_divergence, sparse_kl
from core.models.latents import SHARED, Latent


class SparseConfig(ModelConfig):
    """The options of a model that can make its shared latent sparse."""

    sparse: bool = Field(
        False,
        description="variational-dropout experts (mcVAE): σ² = α μ² with one learnable log α per "
        "latent dimension, the Molchanov KL approximation",
    )
    threshold: float | None = Field(
        None,
        gt=0,
        le=1,
        description="with sparse: latent dimensions whose dropout rate α/(1+α) reaches it are "
        "zeroed at prediction (None: none are)",
    )

    @model_validator(mode="after")
    def _threshold_needs_sparse(self) -> SparseConfig:
        if self.threshold is not None and not self.sparse:
            raise ValueError("threshold: applies to sparse models only (set sparse: true)")
        return self


class SparseLatent(MultimodalVAE):
    """The model side of `SparseConfig`; the KL of a shared posterior goes through `shared_kl`."""

    config: SparseConfig

    def __init__(self, config: SparseConfig | dict) -> None:
        super().__init__(config)
        if self.config.sparse:
            self.log_alpha = nn.Parameter(torch.zeros(self.latent_dim))

    def split_encoding(self, m: str, out: Tensor) -> tuple[Diagonal, Diagonal | None]:
        """Sparse: the expert's variance is α μ² (its encoder's scale output is unused)."""
        shared, private = super().split_encoding(m, out)
        if self.config.sparse:
            scale = torch.exp(0.5 * self.log_alpha) * (shared.loc.abs() + 1e-8)
            shared = Diagonal(shared.loc, scale, shared.family)
        return shared, private

    def dropout_rates(self) -> Tensor:
        """α/(1+α) per latent dimension (sparse models)."""
        return torch.sigmoid(self.log_alpha)

    def kept_mask(self) -> Tensor | None:
        """Bool [D]: the dimensions whose dropout rate is under `threshold`; None without one."""
        if not (self.config.sparse and self.config.threshold is not None):
            return None
        return self.dropout_rates() < self.config.threshold

    def kept_dimensions(self) -> list[int] | None:
        keep = self.kept_mask()
        return None if keep is None else keep.nonzero().flatten().tolist()

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        """With a threshold, dimensions dropped out are zero at prediction."""
        latent = super().infer(batch, mask, experts, draw)
        keep = self.kept_mask()
        if keep is not None and not self.training:
            latent.codes[SHARED] = latent.codes[SHARED] * keep.to(latent.codes[SHARED].dtype)
        return latent

    def shared_kl(self, q: Diagonal) -> Tensor:
        """KL(q ‖ p) of a shared posterior, or its variational-dropout approximation."""
        return sparse_kl(q) if self.config.sparse else kl_divergence(q, self.prior())
