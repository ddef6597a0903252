"""DVCCA (Wang, Yan, Lee & Livescu 2016, deep variational CCA): the shared latent is inferred
from one modality alone and decodes every modality; VCCA-private adds a private latent per
modality, decoded with the shared one. Any number of modalities.

Loss per sample = β [KL(q(z|x_e) ‖ p) + Σ_m KL(q(h_m|x_m) ‖ p)] − Σ_m λ_m log p(x_m | z, h_m),
x_e the `encoded_modality`, z ~ q(z|x_e), h_m ~ q(h_m|x_m) (private variant only; the sums are
not averaged, as the paper and multi-view-AE). multi-view-AE's `private=True` is
`modalities_specific_dim = latent_dim`; its one Adam per network equals one Adam over all.

Incomplete data: sums run over the sample's observed modalities; a sample without x_e has no
shared posterior and contributes nothing (the loss still averages over the whole batch).
Inference and generation need x_e (`required_inputs`); the private code of a modality not
given comes from its prior.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from torch import Tensor

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.latents import SHARED, Latent
from core.models.optimization import LossOutput


class DVCCAConfig(ModelConfig):
    model_type: str = "dvcca"
    encoded_modality: str | None = Field(
        None, description="the modality the shared latent is inferred from (default: the first)"
    )
    modalities_specific_dim: int | dict[str, int] | None = Field(
        None,
        description="VCCA-private: each modality's own latent of this size (one size, or one "
        "per modality), decoded with the shared one; None: no private latents",
    )

    @model_validator(mode="after")
    def _check_modalities(self) -> DVCCAConfig:
        names = self.modality_names
        if self.encoded_modality is not None and self.encoded_modality not in names:
            raise ValueError(f"encoded_modality: {self.encoded_modality!r} is not one of {names}")
        if self.modalities_specific_dim is not None:
            self.check_modality_sizes("modalities_specific_dim")
        return self


class DVCCA(MultimodalVAE):
    model_type = "dvcca"
    config_class = DVCCAConfig
    config: DVCCAConfig

    @property
    def encoded(self) -> str:
        """The modality the shared latent is inferred from."""
        return self.config.encoded_modality or self.names[0]

    @property
    def required_inputs(self) -> list[str]:
        return [self.encoded]

    def encoder_output_size(self, modality: str) -> int:
        """The encoded modality's encoder gives the shared latent (and its private one); the
        others only their private latent, or nothing."""
        shared = self.latent_dim if modality == self.encoded else 0
        return 2 * (shared + self.private_dims[modality])

    def unimodal_experts(self, batch: Batch) -> Experts:
        """`shared`: the encoded modality's posterior as the one expert [1, B, D]."""
        shared, private = None, {}
        for m in self.encoders:
            out = self.encoders[m](batch.data[m])
            if m == self.encoded:
                shared, own = self.split_encoding(m, out)
            else:
                own = self.gaussian(out)
            if own is not None:
                private[m] = own
        assert shared is not None
        stacked = Diagonal(shared.loc.unsqueeze(0), shared.scale.unsqueeze(0), shared.family)
        return Experts(stacked, private)

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return Diagonal(experts.loc[0], experts.scale[0], experts.family)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        q = self.posterior(batch, observed, experts.shared)
        latent = Latent({SHARED: q.rsample(1), **self.private_draws(experts, 1)})
        outs = self.decoder_outputs(latent)
        rec = sum(self.log_likelihoods(outs, batch).values())[0]  # [B]
        kl = kl_divergence(q, self.prior()) + self.private_kl(experts, batch)
        has_shared = observed[self.index[self.encoded]].to(rec.dtype)
        loss = -(rec - self.config.beta * kl) * has_shared
        metrics = {"rec": -rec.mean().detach(), "kl": kl.mean().detach()}
        return LossOutput(loss.mean(), metrics)
