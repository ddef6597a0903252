"""Multi-view autoencoder (multi-view-AE's `AE`): deterministic per-modality encoders, and every
modality reconstructed from every modality's code.

Loss per sample = (1/M_o²) Σ_j Σ_i −λ_i log p(x_i | z_j), z_j = encoder_j(x_j), over the
sample's M_o observed modalities (sources j and targets i). −log p is the modality's likelihood:
with a Gaussian of fixed scale it is multi-view-AE's MSE up to scale and a constant, with a
Bernoulli the binary cross-entropy. No prior and no likelihood p(x) (core/models/autoencoder.py).

Incomplete data: sources and targets run over the sample's observed modalities.
"""

from __future__ import annotations

from torch import Tensor

from core.data.batch import Batch
from core.models.autoencoder import Autoencoder
from core.models.base import Experts
from core.models.config import ModelConfig
from core.models.optimization import LossOutput


class AEConfig(ModelConfig):
    model_type: str = "ae"


class AE(Autoencoder):
    model_type = "ae"
    config_class = AEConfig
    config: AEConfig

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        rec = self.cross_reconstruction(experts.shared.loc, batch, observed)
        return LossOutput(rec.mean(), {"rec": rec.mean().detach()})
