"""Adversarial autoencoders (mAAE, mWAE): deterministic per-modality encoders and decoders with
cross-reconstruction (core/models/autoencoder.py), and a discriminator (or critic) on the codes
that pushes every modality's codes towards the prior N(0, I), so the prior can be sampled.

Three phases per batch, each with its own optimizer (multi-view-AE's manual optimisation):
  1. "autoencoder" (encoders, decoders): the cross-reconstruction (1/M_o²) Σ_j Σ_i −log p(x_i|z_j);
  2. "discriminator": `critic_loss` on prior draws against the codes, re-encoded without
     gradient after phase 1;
  3. "generator" (encoders, their own optimizer state): `generator_loss` on the re-encoded codes.
A subclass defines the two adversarial losses from the discriminator's raw outputs; `forward`
(evaluation, and the loss logged) returns the sum of the three losses on the batch.
Incomplete data: every term runs over each sample's observed modalities.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field, field_validator
from torch import Tensor

from core.data.batch import Batch
from core.models.autoencoder import Autoencoder
from core.models.base import Experts
from core.models.config import ModelConfig, NetworkSpec
from core.models.optimization import LossOutput, Optimizers, OptimizerSpec, Stage
from core.nn.networks import build_network, on_rows, validate_network_spec

AUTOENCODER, DISCRIMINATOR, GENERATOR = "autoencoder", "discriminator", "generator"


def _default_discriminator() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [64, 64]}


class AdversarialConfig(ModelConfig):
    """The discriminator's network and the optimizers' learning rates (None: the trainer's)."""

    discriminator: NetworkSpec = Field(
        default_factory=_default_discriminator,
        description="network from a code to one score (mlp options: hidden, activation, dropout)",
    )
    discriminator_learning_rate: float | None = Field(None, gt=0)
    generator_learning_rate: float | None = Field(None, gt=0)

    @field_validator("discriminator")
    @classmethod
    def _network(cls, v: NetworkSpec) -> NetworkSpec:
        return validate_network_spec(v)


class Adversarial(Autoencoder):
    """Base of mAAE and mWAE: the discriminator, the three optimizers and the phased step."""

    has_prior = True  # the codes are matched to N(0, I) adversarially
    config: AdversarialConfig

    def __init__(self, config: AdversarialConfig | dict) -> None:
        super().__init__(config)
        self.discriminator = None
        if self.adversarial:
            self.discriminator = build_network(self.config.discriminator, (self.latent_dim,), (1,))

    @property
    def adversarial(self) -> bool:
        """Whether a discriminator matches the codes to the prior; otherwise `code_penalty`
        does, inside one loss and one optimizer (mWAE's MMD option)."""
        return True

    def code_penalty(self, codes: Tensor, observed: Tensor) -> Tensor:
        """A scalar divergence between the codes [M, B, D] and the prior (non-adversarial)."""
        raise NotImplementedError

    # ---- the two adversarial losses, from raw discriminator outputs -------------------------
    def critic_loss(self, real: Tensor, fake: Tensor, observed: Tensor) -> Tensor:
        """Per-sample loss [B] of the discriminator: `real` [B] on prior draws, `fake` [M, B] on
        each modality's codes (observed where `observed` [M, B])."""
        raise NotImplementedError

    def generator_loss(self, fake: Tensor, observed: Tensor) -> Tensor:
        """Per-sample loss [B] of the encoders against the discriminator."""
        raise NotImplementedError

    def after_critic_step(self) -> None:
        """Called after each discriminator step (mWAE clips its critic's weights)."""

    # ---- shared machinery ---------------------------------------------------------------------
    def score(self, codes: Tensor) -> Tensor:
        """Raw discriminator outputs [...] for codes [..., D]."""
        return on_rows(self.discriminator, codes).squeeze(-1)

    def prior_codes(self, like: Tensor) -> Tensor:
        """Draws [B, D] of the prior N(0, I), one per sample of `like` [M, B, D]."""
        return torch.randn(like.shape[1:], dtype=like.dtype, device=like.device)

    def critic_term(self, codes: Tensor, observed: Tensor) -> Tensor:
        """The discriminator's batch loss: prior draws against the codes [M, B, D]."""
        real = self.score(self.prior_codes(codes))
        return self.critic_loss(real, self.score(codes), observed).mean()

    def generator_term(self, codes: Tensor, observed: Tensor) -> Tensor:
        """The encoders' batch loss against the discriminator."""
        return self.generator_loss(self.score(codes), observed).mean()

    def losses(self, batch: Batch, observed: Tensor, codes: Tensor) -> dict[str, Tensor]:
        """The three per-batch losses (means over samples) on `codes` [M, B, D]."""
        rec = self.cross_reconstruction(codes, batch, observed).mean()
        critic = self.critic_term(codes, observed)
        return {"rec": rec, "critic": critic, "generator": self.generator_term(codes, observed)}

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        codes = experts.shared.loc
        if self.adversarial:
            parts = self.losses(batch, observed, codes)
        else:
            rec = self.cross_reconstruction(codes, batch, observed).mean()
            parts = {"rec": rec, "penalty": self.code_penalty(codes, observed)}
        return LossOutput(sum(parts.values()), {k: v.detach() for k, v in parts.items()})

    def configure_optimizers(self, stage: Stage) -> dict[str, OptimizerSpec]:
        if not self.adversarial:
            return super().configure_optimizers(stage)
        networks = [*self.encoders.parameters(), *self.decoders.parameters()]
        return {
            AUTOENCODER: OptimizerSpec(networks),
            DISCRIMINATOR: OptimizerSpec(
                self.discriminator.parameters(),
                learning_rate=self.config.discriminator_learning_rate,
            ),
            GENERATOR: OptimizerSpec(
                self.encoders.parameters(), learning_rate=self.config.generator_learning_rate
            ),
        }

    def training_step(self, batch: Any, optimizers: Optimizers) -> LossOutput:
        if not self.adversarial:
            return super().training_step(batch, optimizers)
        batch = self.clean(batch)
        observed = batch.mask_matrix(self.names)

        def codes() -> Tensor:
            return self.unimodal_experts(batch).shared.loc

        rec = self.cross_reconstruction(codes(), batch, observed).mean()
        optimizers.step(rec, AUTOENCODER)
        with torch.no_grad():
            fixed = codes()
        critic = self.critic_term(fixed, observed)
        optimizers.step(critic, DISCRIMINATOR)
        self.after_critic_step()
        generator = self.generator_term(codes(), observed)
        optimizers.step(generator, GENERATOR)
        parts = {"rec": rec, "critic": critic, "generator": generator}
        metrics = {k: v.detach() for k, v in parts.items()}
        return LossOutput(sum(metrics.values()), metrics)


def observed_mean(values: Tensor, observed: Tensor, extra: Tensor | None = None) -> Tensor:
    """Per sample [B]: the sum of `values` [M, B] over observed modalities (plus `extra` [B]),
    divided by their count (plus one with `extra`)."""
    weight = observed.to(values.dtype)
    total = (values * weight).sum(0)
    count = weight.sum(0)
    if extra is not None:
        total, count = total + extra, count + 1
    return total / count.clamp_min(1.0)
