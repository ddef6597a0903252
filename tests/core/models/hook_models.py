"""Test-only models, one per hook of the model API, each a complete model in a few lines:

- `TwoLevelVAE`: two latent levels; the bottom level's prior depends on the top level's codes.
- `FlowVAE`: a normalising-flow posterior (a PoE pushed through a learned MAF).
- `AdversarialVAE`: two optimizers and an adversarial step (a latent discriminator).
- `TwoStageVAE`: two stages; the loss and the trained parameters depend on the stage.

Importing this module registers them, so they load, serve and travel like built-in models.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import zuko
from pydantic import Field
from torch import Tensor, nn

from core.data.batch import Batch
from core.models import (
    Draw,
    Experts,
    Latent,
    LatentSpace,
    LossOutput,
    ModelConfig,
    MultimodalVAE,
    Optimizers,
    OptimizerSpec,
    Stage,
    level_space,
)
from core.models.distributions import Diagonal, FlowPosterior, Posterior, kl_divergence
from core.models.fusion import product_of_experts
from core.nn.networks import build_network

TOP, BOTTOM = level_space(0), level_space(1)


def _gaussian(net: nn.Module, x: Tensor, dim: int) -> Diagonal:
    """A diagonal Gaussian whose mean and log-variance a network reads from x [..., F]."""
    out = net(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], 2 * dim)
    return Diagonal(out[..., :dim], torch.exp(0.5 * out[..., dim:].clamp(-30, 20)))


class PoEVAE(MultimodalVAE):
    """Shared machinery of the test models: a PoE posterior with the prior expert, and the
    ELBO rec − β·KL(q ‖ p) with one draw."""

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return product_of_experts(experts.loc, experts.scale, mask, prior_expert=True)

    def elbo_terms(self, batch: Batch, observed: Tensor, experts: Experts) -> tuple[Tensor, ...]:
        q = self.posterior(batch, observed, experts.shared)
        z = q.rsample(1)
        rec = sum(self.log_likelihoods(self.decoder_outputs(z), batch).values())[0]
        return rec, kl_divergence(q, self.prior()), z[0]


# ---- two latent levels ----------------------------------------------------------------------
class TwoLevelConfig(ModelConfig):
    model_type: str = "test_two_level"
    top_dim: int = Field(2, gt=0, description="size of the top level")


class TwoLevelVAE(MultimodalVAE):
    """p(z0) p(z1 | z0) p(x | z1); q(z1 | X) a PoE of the experts, q(z0 | z1) a network."""

    model_type = "test_two_level"
    config_class = TwoLevelConfig
    config: TwoLevelConfig
    primary_space = BOTTOM

    def __init__(self, config: TwoLevelConfig | dict) -> None:
        super().__init__(config)
        d0, d1 = self.config.top_dim, self.latent_dim
        self.up = build_network({"kind": "mlp", "hidden": [16]}, (d1,), (2 * d0,))
        self.down = build_network({"kind": "mlp", "hidden": [16]}, (d0,), (2 * d1,))

    def declare_latent_spaces(self) -> list[LatentSpace]:
        return [
            LatentSpace(TOP, self.config.top_dim),
            LatentSpace(BOTTOM, self.latent_dim, conditional=True),
        ]

    def decoder_inputs(self, modality: str) -> tuple[str, ...]:
        return (BOTTOM,)

    def prior(self, space: str = TOP, latent: Latent | None = None) -> Posterior:
        if space == BOTTOM:
            assert latent is not None, "p(z1 | z0) needs the top level's codes"
            return _gaussian(self.down, latent.codes[TOP], self.latent_dim)
        return super().prior(space)

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        shared = experts.shared
        q1 = product_of_experts(shared.loc, shared.scale, mask, prior_expert=False)
        z1 = draw(BOTTOM, q1)
        q0 = _gaussian(self.up, z1, self.config.top_dim)
        z0 = draw(TOP, q0)
        return Latent({TOP: z0, BOTTOM: z1}, {TOP: q0, BOTTOM: q1}, primary=BOTTOM)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        latent = self.infer(batch, observed, experts, Draw())
        rec = sum(self.log_likelihoods(self.decoder_outputs(latent), batch).values())[0]
        kl_top = kl_divergence(latent.posteriors[TOP], self.prior(TOP))[0]
        kl_bottom = kl_divergence(latent.posteriors[BOTTOM], self.prior(BOTTOM, latent))[0]
        loss = (-rec + self.config.beta * (kl_top + kl_bottom)).mean()
        metrics = {"kl_top": kl_top.mean().detach(), "kl_bottom": kl_bottom.mean().detach()}
        return LossOutput(loss, metrics)


# ---- a flow posterior -----------------------------------------------------------------------
class FlowVAE(PoEVAE):
    """q(z | X) = the PoE of the experts pushed through an unconditional MAF; the KL term is a
    one-draw estimate log q(z) − log p(z) (no closed form)."""

    model_type = "test_flow"

    def __init__(self, config: ModelConfig | dict) -> None:
        super().__init__(config)
        self.flow = zuko.flows.MAF(self.latent_dim, transforms=2, hidden_features=[16])

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return FlowPosterior(super().posterior(batch, mask, experts), self.flow.transform())

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        q = self.posterior(batch, observed, experts.shared)
        z = q.rsample(1)
        rec = sum(self.log_likelihoods(self.decoder_outputs(z), batch).values())[0]
        kl = (q.log_prob(z) - self.prior().log_prob(z))[0]
        return LossOutput((-rec + self.config.beta * kl).mean(), {"kl": kl.mean().detach()})


# ---- two optimizers and an adversarial step -------------------------------------------------
class AdversarialVAE(PoEVAE):
    """A VAE whose codes must also fool a latent discriminator D (z from q vs z from p).

    Optimizer "autoencoder" minimises −rec + β KL − log D(z); optimizer "discriminator"
    minimises −log D(z_prior) − log(1 − D(z)), with its own learning rate.
    """

    model_type = "test_adversarial"

    def __init__(self, config: ModelConfig | dict) -> None:
        super().__init__(config)
        self.critic = build_network({"kind": "mlp", "hidden": [16]}, (self.latent_dim,), (1,))

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        rec, kl, z = self.elbo_terms(batch, observed, experts)
        fool = F.softplus(-self.critic(z)).squeeze(-1)  # −log D(z)
        loss = (-rec + self.config.beta * kl + fool).mean()
        return LossOutput(loss, {"rec": -rec.mean().detach(), "fool": fool.mean().detach()})

    def discriminator_loss(self, batch: Batch) -> Tensor:
        with torch.no_grad():
            z = self.encode(batch).z[0]
            z_prior = self.prior().rsample(len(z))
        real, fake = self.critic(z_prior), self.critic(z)
        return (F.softplus(-real) + F.softplus(fake)).mean()  # −log D(p) − log(1 − D(q))

    def configure_optimizers(self, stage: Stage) -> dict[str, OptimizerSpec]:
        autoencoder = [p for n, p in self.named_parameters() if not n.startswith("critic.")]
        return {
            "autoencoder": OptimizerSpec(autoencoder),
            "discriminator": OptimizerSpec(self.critic.parameters(), learning_rate=5e-4),
        }

    def training_step(self, batch: Batch, optimizers: Optimizers) -> LossOutput:
        out = self(batch)
        optimizers.step(out.loss, "autoencoder")
        critic = self.discriminator_loss(batch)
        optimizers.step(critic, "discriminator")
        return LossOutput(out.loss, {**out.metrics, "critic": critic.detach()})


# ---- two stages -----------------------------------------------------------------------------
class TwoStageConfig(ModelConfig):
    model_type: str = "test_two_stage"
    warmup: int = Field(2, gt=0, description="epochs of the autoencoding stage")


class TwoStageVAE(PoEVAE):
    """Stage "autoencode" (`warmup` epochs): −rec, every parameter. Stage "regularise": −rec + β
    KL, decoders frozen. The loss is told apart by the metric `stage_index`."""

    model_type = "test_two_stage"
    config_class = TwoStageConfig
    config: TwoStageConfig

    @property
    def stages(self) -> list[Stage]:
        encoders = Stage("regularise", None, parameters=lambda m: m.encoders.parameters())
        return [Stage("autoencode", self.config.warmup), encoders]

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        rec, kl, _ = self.elbo_terms(batch, observed, experts)
        beta = 0.0 if self.stage == "autoencode" else self.config.beta
        index = torch.tensor(float([s.name for s in self.stages].index(self.stage)))
        return LossOutput(
            (-rec + beta * kl).mean(), {"kl": kl.mean().detach(), "stage_index": index}
        )


HOOK_MODELS = {
    "two_level": {"model_type": "test_two_level", "top_dim": 2},
    "flow": {"model_type": "test_flow"},
    "adversarial": {"model_type": "test_adversarial"},
    "two_stage": {"model_type": "test_two_stage", "warmup": 2},
}
