"""mWAE: the multimodal Wasserstein autoencoder of multi-view-AE (after Tolstikhin et al.'s WAE),
with either of the WAE paper's two penalties matching every modality's codes to N(0, I):

- `penalty="critic"` (default, multi-view-AE's): a WGAN critic (raw scores, no sigmoid) in the
  three phases of core/models/adversarial.py, its weights clipped to ±`clip_value` after each
  step; critic loss [−D(z_prior) + Σ_m D(z_m)] / (M_o + 1), generator −(1/M_o) Σ_m D(z_m).
  (multi-view-AE builds its critic before setting `is_wasserstein`, so its critic keeps a
  sigmoid: not ported.)
- `penalty="mmd"`: WAE-MMD, one loss and one optimizer: cross-reconstruction +
  `mmd_weight` · (1/M) Σ_m MMD²(codes of m, prior draws), the unbiased estimate with the inverse
  multiquadratic kernel Σ_s C_s / (C_s + ‖x − y‖²), C_s = s · 2D for s in MMD_SCALES (the WAE
  paper's kernel and scales), over the batch's samples observing m (fewer than two: no term).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from core.models.adversarial import Adversarial, AdversarialConfig, observed_mean

MMD_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


class MWAEConfig(AdversarialConfig):
    model_type: str = "mwae"
    penalty: Literal["critic", "mmd"] = Field(
        "critic", description="critic: WGAN critic with weight clipping; mmd: WAE-MMD"
    )
    clip_value: float = Field(0.01, gt=0, description="critic weights are clipped to ±clip_value")
    mmd_weight: float = Field(1.0, ge=0, description="λ of the MMD penalty (penalty=mmd)")


def imq_mmd(x: Tensor, y: Tensor) -> Tensor:
    """Unbiased MMD² between samples x [N, D] and y [N, D], inverse multiquadratic kernels."""
    n, d = x.shape
    both = torch.cat([x, y])
    distances = torch.cdist(both, both).pow(2)
    kernel = sum(s * 2 * d / (s * 2 * d + distances) for s in MMD_SCALES)
    off_diagonal = 1 - torch.eye(n, dtype=x.dtype, device=x.device)
    within = (kernel[:n, :n] * off_diagonal).sum() + (kernel[n:, n:] * off_diagonal).sum()
    return within / (n * (n - 1)) - 2 * kernel[:n, n:].mean()


class MWAE(Adversarial):
    model_type = "mwae"
    config_class = MWAEConfig
    config: MWAEConfig

    @property
    def adversarial(self) -> bool:
        return self.config.penalty == "critic"

    def critic_loss(self, real: Tensor, fake: Tensor, observed: Tensor) -> Tensor:
        return observed_mean(fake, observed, extra=-real)

    def generator_loss(self, fake: Tensor, observed: Tensor) -> Tensor:
        return observed_mean(-fake, observed)

    @torch.no_grad()
    def after_critic_step(self) -> None:
        for p in self.discriminator.parameters():
            p.clamp_(-self.config.clip_value, self.config.clip_value)

    def code_penalty(self, codes: Tensor, observed: Tensor) -> Tensor:
        terms = []
        for i in range(len(self.names)):
            z = codes[i][observed[i]]
            if len(z) > 1:
                terms.append(imq_mmd(z, torch.randn_like(z)))
        total = sum(terms) / len(self.names) if terms else codes.new_zeros(())
        return self.config.mmd_weight * total
