"""TELBO (Vedantam, Fischer, Huang & Murphy, ICLR 2018): the triple ELBO, trained in two stages.

Stage `joint` (the first `warmup` epochs): the joint ELBO with a joint encoder q(z|X),
    −Σ_m λ_m log p(x_m | z) + β KL(q(z|X) ‖ p),  z ~ q(z|X).
Stage `unimodal` (the rest): the joint encoder and the decoders frozen (out of the optimiser),
the unimodal encoders trained on
    Σ_m γ_m [−log p(x_m | z_m) + β KL(q(z|x_m) ‖ p)],  z_m ~ q(z|x_m),
each KL with its own posterior's variance (MultiVae uses the joint one there, a bug MODELS.md
records), the stage boundary exact (MultiVae resets the optimiser one epoch early).

Inference: the joint encoder for samples given every modality; otherwise the PoE of the given
unimodal posteriors (no prior expert), for any subset (MultiVae refuses subsets of size
2..M−1). Incomplete data: the joint encoder needs every modality, so stage `joint` skips
samples missing one (they add 0 to the batch mean); stage `unimodal` trains each modality a
sample has.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.joint_encoder import JointEncoded, JointEncoderConfig
from core.models.optimization import LossOutput, Stage


class TELBOConfig(JointEncoderConfig):
    model_type: str = "telbo"
    warmup: int = Field(10, ge=1, description="epochs of the joint stage")
    lambda_factors: dict[str, float] | None = Field(
        None, description="λ_m: reconstruction weights of the joint ELBO (default 1 each)"
    )
    gamma_factors: dict[str, float] | None = Field(
        None, description="γ_m: weights of the unimodal ELBOs of stage 2 (default 1 each)"
    )

    @model_validator(mode="after")
    def _known_modalities(self) -> TELBOConfig:
        self.check_modality_weights("lambda_factors", "gamma_factors")
        return self


def _all_but_unimodal_encoders(model: nn.Module) -> list[nn.Parameter]:
    return [p for name, p in model.named_parameters() if not name.startswith("encoders.")]


class TELBO(JointEncoded, MultimodalVAE):
    model_type = "telbo"
    config_class = TELBOConfig
    config: TELBOConfig

    @property
    def stages(self) -> list[Stage]:
        """`joint` trains all but the unimodal encoders; `unimodal` only them."""
        joint = Stage("joint", self.config.warmup, parameters=_all_but_unimodal_encoders)
        unimodal = Stage("unimodal", None, parameters=lambda m: m.encoders.parameters())
        return [joint, unimodal]

    def _factor(self, field: str, modality: str) -> float:
        return (getattr(self.config, field) or {}).get(modality, 1.0)

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        return self.joint_or_subset(batch, mask, experts)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        if self.stage == "joint":
            return self.joint_elbo(batch, observed, self.config.lambda_factors)
        return self._unimodal_elbos(batch, observed, experts.shared)

    def _unimodal_elbos(self, batch: Batch, observed: Tensor, experts: Diagonal) -> LossOutput:
        own = experts.rsample(1)[0]  # [M, B, D]
        kl = kl_divergence(experts, self.prior())  # [M, B], each expert's own variance
        total = 0.0
        for i, m in enumerate(self.names):
            rec = self.log_likelihoods(self.decoder_outputs(own[i : i + 1], [m]), batch)[m][0]
            elbo = rec - self.config.beta * kl[i] * observed[i].to(kl.dtype)
            total = total - self._factor("gamma_factors", m) * elbo
        return LossOutput(total.mean(), {"kl_unimodal": kl.mean().detach()})
