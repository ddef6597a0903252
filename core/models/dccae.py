"""DCCAE (Wang, Arora, Livescu & Bilmes, ICML 2015): deep canonically correlated autoencoders.
Per-modality deterministic autoencoders, each decoding its own modality from its own code, tied
by a multi-set CCA loss on the batch's codes (core/models/cca.py):

    loss = reconstruction_weight · mean_b Σ_m −λ_m log p(x_m | z_m) − Σ_top-k canonical corr.

multi-view-AE's `_lambda` is `reconstruction_weight` (it weights reconstruction); its upstream
optimizer, LBFGS, is `TrainerConfig(optimizer="lbfgs")`. The CCA term is a statistic of the
batch, so batches should be much larger than the latent size (the ridge keeps small ones
finite).

The codes are correlated, not shared (CCA is blind to an invertible linear map of each view), so
each modality keeps its own latent space `private/<m>`: the representation (`primary_space`) is
the first modality's code, as in DCCA, and a modality is generated only from its own code —
cross-modal generation is refused with that reason. Unconditional samples come from a sampler
fitted on the codes, one density per space (no prior, core/models/autoencoder.py).

Incomplete data: reconstruction over each sample's observed modalities; the CCA term over the
batch's samples observing every modality (fewer than two: no CCA term on that batch). A space
whose modality is not given holds zeros, marked unobserved.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from pydantic import Field
from torch import Tensor

from core.data.batch import Batch
from core.models.autoencoder import Autoencoder
from core.models.base import Draw, Experts
from core.models.cca import multiset_cca_loss
from core.models.config import ModelConfig
from core.models.distributions import Diagonal
from core.models.latents import Latent, LatentSpace, private_space
from core.models.optimization import LossOutput


class DCCAEConfig(ModelConfig):
    model_type: str = "dccae"
    reconstruction_weight: float = Field(
        1.0, ge=0, description="weight of the reconstruction term (multi-view-AE's _lambda)"
    )
    cca_ridge: float = Field(
        1e-3, ge=0, le=1, description="r in (1 − r) Σ_mm + r I, the within-view covariances"
    )
    cca_components: int | None = Field(
        None, ge=1, description="canonical correlations maximised (default: latent_dim)"
    )


class DCCAE(Autoencoder):
    model_type = "dccae"
    config_class = DCCAEConfig
    config: DCCAEConfig

    @property
    def primary_space(self) -> str:  # type: ignore[override]
        return private_space(self.names[0])

    def declare_latent_spaces(self) -> list[LatentSpace]:
        return [LatentSpace(private_space(m), self.latent_dim) for m in self.names]

    def decoder_inputs(self, modality: str) -> tuple[str, ...]:
        return (private_space(modality),)

    def generation_error(self, given: Iterable[str], targets: Iterable[str]) -> str | None:
        targets = list(targets)
        other = [t for t in targets if t not in set(given)]
        if other:
            return (
                f"this {self.model_type} model decodes each modality from its own code (its codes "
                f"are correlated, not shared): {other} not given"
            )
        return super().generation_error(given, targets)

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        """Each given modality's code in its own space; zeros where it is not given."""
        latent = Latent({}, primary=self.primary_space)
        for i, m in enumerate(self.names):
            code = experts.shared.loc[i] * mask[i].unsqueeze(-1).to(experts.shared.loc.dtype)
            space, posterior = private_space(m), Diagonal(code, torch.zeros_like(code))
            latent.codes[space], latent.posteriors[space] = draw(space, posterior), posterior
            latent.observed[space] = mask[i]
        return latent

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        codes = experts.shared.loc  # [M, B, D]
        rec = torch.zeros_like(codes[0, :, 0])
        for i, m in enumerate(self.names):  # each modality from its own code
            out = self.decoder_outputs(Latent({private_space(m): codes[i : i + 1]}), [m])
            rec = rec - self.log_likelihoods(out, batch)[m][0]
        complete = observed.all(0)
        cca = torch.zeros((), dtype=codes.dtype, device=codes.device)
        if int(complete.sum()) > 1:
            k = self.config.cca_components or self.latent_dim
            cca = multiset_cca_loss(list(codes[:, complete]), self.config.cca_ridge, k)
        loss = self.config.reconstruction_weight * rec.mean() + cca
        return LossOutput(loss, {"rec": rec.mean().detach(), "cca": cca.detach()})
