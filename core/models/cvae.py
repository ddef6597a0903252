"""CVAE: the conditional VAE (Sohn, Lee & Yan 2015), generating `main_modality` from the
`conditioning_modalities`.

Each modality has a feature network (the model's `encoder` spec, `condition_features` outputs);
c = the conditioning modalities' features, concatenated. Posterior q(z | x_main, c) from
`posterior_network` over [features(x_main), c]; prior p(z | c) = N(0, I), or with
`prior_network` a Gaussian from c; decoder p(x_main | z, c) over [z, c]. Loss
    −λ log p(x_main | z, c) + β KL(q(z | x_main, c) ‖ p(z | c)),  z ~ q,
as MultiVae's CVAE. The model generates only the main modality, and only given every
conditioning modality: `generate(given=conditioning, targets=[main])`; there are no unconditional
samples (the prior needs c), and `log_likelihood` is the conditional log p(x_main | c).

Incomplete data: a sample trains only when it has the main modality and every conditioning one
(it adds 0 otherwise; MultiVae has no incomplete data). Encoding needs every conditioning
modality; a sample without the main modality gets the prior p(z | c).
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Draw, Experts, MultimodalVAE
from core.models.config import ModelConfig, NetworkSpec
from core.models.distributions import Diagonal, kl_divergence
from core.models.latents import SHARED, Latent, LatentSpace
from core.models.optimization import LossOutput
from core.nn.networks import build_network, on_rows, validate_network_spec

CONDITION = "condition"  # the decoder's context: the conditioning features


def _default_posterior_network() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [512, 512]}


class CVAEConfig(ModelConfig):
    model_type: str = "cvae"
    main_modality: str | None = Field(
        None, description="the modality generated (default: the first modality)"
    )
    conditioning_modalities: list[str] | None = Field(
        None, description="the modalities it is generated from (default: every other one)"
    )
    condition_features: int = Field(64, gt=0, le=4096, description="features per modality")
    posterior_network: NetworkSpec = Field(
        default_factory=_default_posterior_network,
        description="q(z | x_main, c) over the concatenated features",
    )
    prior_network: NetworkSpec | None = Field(
        None, description="p(z | c) over the conditioning features; None: N(0, I)"
    )

    @model_validator(mode="after")
    def _roles(self) -> CVAEConfig:
        names = self.modality_names
        if self.main_modality is None:
            self.main_modality = names[0]
        if self.main_modality not in names:
            raise ValueError(f"main_modality: {self.main_modality!r} is not among {names}")
        others = [m for m in names if m != self.main_modality]
        if self.conditioning_modalities is None:
            self.conditioning_modalities = others
        chosen = self.conditioning_modalities
        if not chosen or sorted(set(chosen)) != sorted(others) or len(set(chosen)) != len(chosen):
            raise ValueError(
                f"conditioning_modalities: every modality but the main one, once: {others}"
            )
        validate_network_spec(self.posterior_network)
        if self.prior_network is not None:
            validate_network_spec(self.prior_network)
        return self


class CVAE(MultimodalVAE):
    model_type = "cvae"
    config_class = CVAEConfig
    config: CVAEConfig

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__(config)
        cfg, f, d = self.config, self.config.condition_features, self.latent_dim
        width = f * len(self.conditions)
        self.posterior_head = build_network(cfg.posterior_network, (f + width,), (2 * d,))
        self.prior_head = (
            None
            if cfg.prior_network is None
            else build_network(cfg.prior_network, (width,), (2 * d,))
        )
        main = cfg.modality(self.main)
        decoder = build_network(main.decoder or cfg.decoder, (d + width,), tuple(main.shape))
        self.decoders = nn.ModuleDict({self.main: decoder})

    def encoder_output_size(self, modality: str) -> int:
        return self.config.condition_features

    @property
    def main(self) -> str:
        return str(self.config.main_modality)

    @property
    def conditions(self) -> list[str]:
        return list(self.config.conditioning_modalities or [])

    def declare_latent_spaces(self) -> list[LatentSpace]:
        """z, conditional: its prior p(z | c) needs the conditioning modalities."""
        return [LatentSpace(SHARED, self.latent_dim, self.posterior_family, conditional=True)]

    def decoder_context(self, modality: str) -> tuple[str, ...]:
        return (CONDITION,)

    @property
    def required_inputs(self) -> list[str]:
        return self.conditions

    # ---- distributions ------------------------------------------------------------------------
    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Diagonal:
        """p(z | c) [S, B, D] from the conditioning features in `latent.context`."""
        if latent is None or CONDITION not in latent.context:
            raise ValueError(
                f"{self.model_type} has no unconditional prior: it generates {self.main!r} from "
                f"{self.conditions}; use generate with them"
            )
        c = latent.context[CONDITION]
        if self.prior_head is None:
            zeros = torch.zeros(*c.shape[:-1], self.latent_dim, dtype=c.dtype, device=c.device)
            return Diagonal(zeros, torch.ones_like(zeros), self.posterior_family)
        return self.gaussian(on_rows(self.prior_head, c))

    def unimodal_experts(self, batch: Batch) -> Experts:
        """Each modality's features (no expert over z: the posterior reads them together)."""
        features = {m: [self.encoders[m](batch.data[m])] for m in self.names}
        first = features[self.main][0]
        shape = (len(self.names), len(first), 0)
        empty = Diagonal(first.new_zeros(shape), first.new_ones(shape), self.posterior_family)
        return Experts(empty, {}, features)

    def _condition(self, experts: Experts) -> Tensor:
        return torch.cat([experts.features[c][0] for c in self.conditions], -1)

    def _posterior(self, experts: Experts, cond: Tensor) -> Diagonal:
        inputs = torch.cat([experts.features[self.main][0], cond], -1)
        return self.gaussian(self.posterior_head(inputs))

    # ---- inference and training ---------------------------------------------------------------
    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        """q(z | x_main, c) for the samples given the main modality, p(z | c) for the others
        (`availability` has checked that every sample is given every conditioning modality)."""
        cond = self._condition(experts)
        prior = self.prior(SHARED, Latent({}, context={CONDITION: cond}))
        post = self._posterior(experts, cond)
        keep = mask[self.index[self.main]].unsqueeze(-1)
        q = Diagonal(torch.where(keep, post.loc, prior.loc),
                     torch.where(keep, post.scale, prior.scale), self.posterior_family)  # fmt: skip
        z = draw(SHARED, q)
        context = {CONDITION: cond.expand(z.shape[0], *cond.shape)}
        return Latent({SHARED: z}, {SHARED: q}, {}, SHARED, context)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        usable = observed.all(0).to(experts.features[self.main][0].dtype)
        cond = self._condition(experts)
        q = self._posterior(experts, cond)
        prior = self.prior(SHARED, Latent({}, context={CONDITION: cond}))
        z = q.rsample(1)
        latent = Latent({SHARED: z}, context={CONDITION: cond.unsqueeze(0)})
        rec = self.log_likelihoods(self.decoder_outputs(latent), batch)[self.main][0]
        kl = kl_divergence(q, prior)
        loss = ((-rec + self.config.beta * kl) * usable).mean()
        return LossOutput(loss, {"rec": -rec.mean().detach(), "kl": kl.mean().detach()})
