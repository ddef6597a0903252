"""mAAE: the multimodal adversarial autoencoder of multi-view-AE (after Makhzani et al.'s AAE),
three phases per batch (core/models/adversarial.py) with the standard bounded GAN losses:

    discriminator: −[log D(z_prior) + Σ_m log(1 − D(z_m))] / (M_o + 1),
    generator:     −(1/M_o) Σ_m log D(z_m),

D = sigmoid of the discriminator's output, computed as softplus of the raw scores for
stability. multi-view-AE's "1 − log D(z_m)" terms, unbounded below, are not ported (MODELS.md).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from core.models.adversarial import Adversarial, AdversarialConfig, observed_mean


class MAAEConfig(AdversarialConfig):
    model_type: str = "maae"


class MAAE(Adversarial):
    model_type = "maae"
    config_class = MAAEConfig
    config: MAAEConfig

    def critic_loss(self, real: Tensor, fake: Tensor, observed: Tensor) -> Tensor:
        # −log D(x) = softplus(−s), −log(1 − D(x)) = softplus(s) for raw score s
        return observed_mean(F.softplus(fake), observed, extra=F.softplus(-real))

    def generator_loss(self, fake: Tensor, observed: Tensor) -> Tensor:
        return observed_mean(F.softplus(-fake), observed)
