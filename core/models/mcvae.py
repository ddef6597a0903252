"""mcVAE (Antelmi, Ayache, Robert & Lorenzi, ICML 2019): multi-channel VAE. One posterior per
modality, and every decoder decodes every modality's latent; optionally sparse (variational
dropout with one log α per latent dimension, core/models/sparse.py).

Loss per sample = β Σ_j KL(q(z|x_j) ‖ p) − (1/M_o²) Σ_j Σ_i λ_i log p(x_i | z_j), z_j ~ q(z|x_j),
j and i over the sample's M_o observed modalities: the KLs are summed, the M_o² reconstructions
averaged (the paper's and multi-view-AE's normalisation). Sparse: σ_j² = α μ_j² and Molchanov's
approximation in place of each KL.

Inference from several modalities: the uniform mixture of their posteriors (each one is trained
to explain every modality); its mean is the average of their means.
Incomplete data: sources, targets and KLs run over the sample's observed modalities.
"""

from __future__ import annotations

from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts
from core.models.distributions import Diagonal, Posterior
from core.models.fusion import mixture_of_experts
from core.models.optimization import LossOutput
from core.models.sparse import SparseConfig, SparseLatent


class MCVAEConfig(SparseConfig):
    model_type: str = "mcvae"


class MCVAE(SparseLatent):
    model_type = "mcvae"
    config_class = MCVAEConfig
    config: MCVAEConfig

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return mixture_of_experts(experts.loc, experts.scale, mask, self.posterior_family)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        q = experts.shared  # [M, B, D]
        rec = self.cross_reconstruction(q.rsample(1)[0], batch, observed)
        kl = (self.shared_kl(q) * observed.to(rec.dtype)).sum(0)  # [B]
        loss = rec + self.config.beta * kl
        return LossOutput(loss.mean(), {"rec": rec.mean().detach(), "kl": kl.mean().detach()})
