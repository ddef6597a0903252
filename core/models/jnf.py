"""JNF (Senellart, Clairon & Lapuyade-Lahorgue, arXiv 2305.11832): a joint VAE, then normalising
flow posteriors per modality, trained in two stages.

Stage `joint` (the first `warmup` epochs): the joint ELBO with the joint encoder,
    −Σ_m λ_m log p(x_m | z) + β KL(q(z|X) ‖ p),  z ~ q(z|X).
Stage `flows` (the rest): the joint encoder and the decoders frozen; each modality's posterior
q_m(z|x_m) = its encoder's Gaussian N(μ_m(x_m), σ_m(x_m)) pushed through an unconditional masked
autoregressive flow f_m (zuko's MAF; f_m maps z to the Gaussian's space, as upstream), fitted to
the joint posterior's draws:
    −Σ_m log q_m(z | x_m) = −Σ_m [log N(f_m(z); μ_m, σ_m) + log|det ∂f_m/∂z|],  z ~ q(z|X).

Inference (core/models/jnf_posterior.py): the joint encoder given every modality, the flow
posterior given one, and given 2..M−1 the product Π q_m / p^{|S|−1} sampled by Hamiltonian Monte
Carlo (`mcmc_steps`, `n_lf`, `eps_lf`; upstream's defaults 100, 10, 0.01), deterministic with a
generator and vectorised over draws and samples.

Incomplete data: both stages need the joint posterior, so samples missing a modality add 0 to the
batch mean in either stage (MultiVae refuses incomplete datasets).
"""

from __future__ import annotations

from typing import Any

import torch
import zuko
from pydantic import Field
from torch import Tensor, nn
from zuko.transforms import Transform

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, FlowPosterior, Posterior
from core.models.jnf_posterior import HMCSettings, JNFPosterior
from core.models.joint_encoder import JointEncoded, JointEncoderConfig
from core.models.optimization import LossOutput, Stage


class JNFConfig(JointEncoderConfig):
    model_type: str = "jnf"
    warmup: int = Field(10, ge=1, description="epochs of the joint stage")
    flow_transforms: int = Field(2, ge=1, le=16, description="MAF transforms per modality")
    flow_hidden: list[int] = Field(
        default_factory=lambda: [128, 128, 128], description="hidden sizes of each MADE"
    )
    mcmc_steps: int = Field(100, ge=1, le=10_000, description="HMC steps for subset inference")
    n_lf: int = Field(10, ge=1, le=1000, description="leapfrog steps per HMC step")
    eps_lf: float = Field(0.01, gt=0, le=10, description="leapfrog step size")
    normaliser_draws: int = Field(
        1000, ge=1, le=100_000, description="draws estimating a subset posterior's constant"
    )
    moment_draws: int = Field(
        32, ge=2, le=10_000, description="HMC chains behind a subset posterior's mean and std"
    )


def _joint_vae(model: nn.Module) -> list[nn.Parameter]:
    return [
        p
        for name, p in model.named_parameters()
        if not name.startswith(("encoders.", "flows."))
    ]


def _unimodal(model: nn.Module) -> list[nn.Parameter]:
    return [*model.encoders.parameters(), *model.flows.parameters()]


class JNF(JointEncoded, MultimodalVAE):
    model_type = "jnf"
    config_class = JNFConfig
    config: JNFConfig

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__(config)
        cfg = self.config
        self.flows = nn.ModuleDict(
            {
                m: zuko.flows.MAF(
                    self.latent_dim, transforms=cfg.flow_transforms, hidden_features=cfg.flow_hidden
                )
                for m in self.names
            }
        )
        # each flow f_m as one transform, built once: an unconditional flow's transform calls
        # its networks when applied (it holds no output of theirs), so it stays current as they
        # train and move; built inside a compiled forward, it would break the graph
        self.flow_maps: dict[str, Transform] = {m: self.flows[m].transform() for m in self.names}

    @property
    def stages(self) -> list[Stage]:
        """`joint` trains the joint encoder and the decoders; `flows` the unimodal encoders and
        their flows."""
        return [Stage("joint", self.config.warmup, _joint_vae), Stage("flows", None, _unimodal)]

    def flow_posteriors(self, experts: Diagonal) -> list[FlowPosterior]:
        """q_m(z|x_m) for every modality m, from its expert [M, B, D]."""
        return [
            FlowPosterior(Diagonal(experts.loc[i], experts.scale[i], "normal"), self.flow_maps[m])
            for i, m in enumerate(self.names)
        ]

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        cfg = self.config
        hmc = HMCSettings(
            cfg.mcmc_steps, cfg.n_lf, cfg.eps_lf, cfg.normaliser_draws, cfg.moment_draws
        )
        joint = self.joint_encode(batch) if bool(mask.all(0).any()) else None
        return JNFPosterior(joint, self.flow_posteriors(experts), mask, hmc)

    def inference_passes(self, modalities: list[str]) -> int:
        """Given 2..M−1 of the modalities, each draw runs HMC: (n_lf + 1) target gradients per
        step."""
        if min(len(modalities), len(self.names) - 1) < 2:
            return 1
        return self.config.mcmc_steps * (self.config.n_lf + 1)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        if self.stage == "joint":
            return self.joint_elbo(batch, observed)
        return self._flow_fit(batch, observed, experts.shared)

    def _flow_fit(self, batch: Batch, observed: Tensor, experts: Diagonal) -> LossOutput:
        complete = observed.all(0).to(experts.loc.dtype)
        with torch.no_grad():
            z = self.joint_encode(batch).rsample(1)[0]  # [B, D], the frozen joint posterior
        log_q = sum(q.log_prob(z) for q in self.flow_posteriors(experts))
        loss = (-log_q * complete).mean()
        return LossOutput(loss, {"flow_nll": loss.detach()})
