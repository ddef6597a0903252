"""JMVAE (Suzuki, Nakayama & Matsuo, 2016): a joint encoder q(z|X) tied to unimodal encoders.

Incomplete data (MultiVae's JMVAE cannot train on it; this one can). The rule, per sample:
- all modalities observed: the JMVAE objective, rec(z ~ q(z|X)) and
  a(t)·[β KL(q(z|X) ‖ p) + α Σ_m KL(q(z|X) ‖ q(z|x_m))];
- some missing: the joint encoder cannot see the sample, so it trains the ELBO of its observed
  modalities under the posterior used at inference for that subset, the PoE of the observed
  unimodal experts: rec(z ~ q_sub) + a(t)·β KL(q_sub ‖ p).
Subset inference (`encode` with some modalities given) uses that same PoE; the joint encoder is
used for samples that have every modality.

The joint encoder follows MultiVae's default: per modality a network of the unimodal encoder's
architecture giving `latent_dim` features, concatenated, then an MLP [512, 512] to the mean and
log-variance (`joint_features`, `joint_encoder`, `joint_feature_activation` change it).
"""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Experts, MultimodalVAE
from core.models.config import ModelConfig, NetworkSpec
from core.models.distributions import Diagonal, Posterior, kl_divergence
from core.models.fusion import product_of_experts
from core.models.optimization import LossOutput
from core.nn.networks import build_network, validate_network_spec


def _default_joint() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [512, 512]}


class JMVAEConfig(ModelConfig):
    model_type: str = "jmvae"
    alpha: float = Field(0.1, ge=0, description="weight of the KL(q(z|X) ‖ q(z|x_m)) terms")
    warmup: int = Field(10, ge=0, description="epochs over which a(t) grows from 0 to 1")
    joint_features: int | None = Field(
        None, gt=0, description="per-modality feature size fed to the head (None: latent_dim)"
    )
    joint_encoder: NetworkSpec = Field(
        default_factory=_default_joint, description="head over the concatenated features"
    )
    joint_feature_activation: Literal["none", "relu"] = Field(
        "none", description="applied to each modality's features before the head"
    )
    joint_init: Literal["copy", "fresh"] | None = Field(
        None,
        description="copy: each feature network starts as its modality's encoder (its mean "
        "head), as MultiVae's joint encoder does; fresh: its own random initialisation; None: "
        "copy when joint_features is left to latent_dim, else fresh",
    )

    @field_validator("joint_encoder")
    @classmethod
    def _network(cls, v: NetworkSpec) -> NetworkSpec:
        return validate_network_spec(v)


class JMVAE(MultimodalVAE):
    model_type = "jmvae"
    config_class = JMVAEConfig
    config: JMVAEConfig

    def __init__(self, config: JMVAEConfig | dict) -> None:
        super().__init__(config)
        cfg = self.config
        feat = cfg.joint_features or self.latent_dim
        self.joint_features = nn.ModuleDict(
            {
                m.name: build_network(m.encoder or cfg.encoder, tuple(m.shape), (feat,))
                for m in cfg.modalities
            }
        )
        self.joint_head = build_network(
            cfg.joint_encoder, (feat * len(self.names),), (2 * self.latent_dim,)
        )
        if (cfg.joint_init or ("copy" if cfg.joint_features is None else "fresh")) == "copy":
            self._copy_encoders()

    @torch.no_grad()
    def _copy_encoders(self) -> None:
        """Start each feature network as its modality's encoder: same weights, the output layer
        cut to its first rows (the mean of the shared latent)."""
        for m, net in self.joint_features.items():
            source = self.encoders[m].state_dict()
            for name, tensor in net.state_dict().items():
                found = source.get(name)
                if found is None or found.shape[1:] != tensor.shape[1:] or len(found) < len(tensor):
                    raise ValueError(
                        f"joint_init: 'copy' needs the feature network of {m!r} to be its "
                        f"encoder's architecture ({name} differs); use 'fresh'"
                    )
                tensor.copy_(found[: len(tensor)])

    def joint_encode(self, batch: Batch) -> Diagonal:
        """q(z|X) [B, D] from every modality (only meaningful for complete samples)."""
        feats = [self.joint_features[m](batch.data[m]) for m in self.names]
        if self.config.joint_feature_activation == "relu":
            feats = [torch.relu(f) for f in feats]
        out = self.joint_head(torch.cat(feats, dim=-1))
        d = self.latent_dim
        return Diagonal(out[:, :d], self.expert_scale(out[:, d:]), "normal")

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        subset = product_of_experts(experts.loc, experts.scale, mask, prior_expert=False)
        complete = mask.all(0)
        if not complete.any():
            return subset
        joint = self.joint_encode(batch)
        pick = complete.unsqueeze(-1)
        return Diagonal(
            torch.where(pick, joint.loc, subset.loc),
            torch.where(pick, joint.scale, subset.scale),
            "normal",
        )

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        complete = observed.all(0)  # [B]
        experts = experts.shared
        joint = self.joint_encode(batch)
        subset = product_of_experts(experts.loc, experts.scale, observed, prior_expert=False)
        # one draw from each posterior; a sample decodes only the draw its objective uses (the
        # joint one when complete, the subset one otherwise), so the decoders see B rows, not 2B
        both = Diagonal(
            torch.stack([joint.loc, subset.loc]), torch.stack([joint.scale, subset.scale])
        )
        drawn = both.rsample(1)[0]  # [2, B, D]
        z = torch.where(complete.unsqueeze(-1), drawn[0], drawn[1])
        rec = sum(self.log_likelihoods(self.decoder_outputs(z.unsqueeze(0)), batch).values())[0]
        prior = self.prior()
        kl_joint = kl_divergence(joint, prior)
        kl_subset = kl_divergence(subset, prior)
        per_expert = kl_divergence(
            Diagonal(joint.loc.unsqueeze(0), joint.scale.unsqueeze(0)), experts
        )  # [M, B]
        kl_experts = (per_expert * observed.to(per_expert.dtype)).sum(0)
        a = self.annealing(self.config.warmup)
        beta, alpha = self.config.beta, self.config.alpha
        joint_loss = -rec + a * (beta * kl_joint + alpha * kl_experts)
        subset_loss = -rec + a * beta * kl_subset
        loss = torch.where(complete, joint_loss, subset_loss).mean()
        return LossOutput(
            loss,
            {
                "rec": -rec.mean().detach(),
                "kl_joint": kl_joint.mean().detach(),
                "kl_experts": kl_experts.mean().detach(),
                "complete_fraction": complete.float().mean(),
            },
        )
