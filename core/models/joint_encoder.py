"""A joint encoder q(z|X) over every modality at once, for the models that have one (jmvae,
telbo, jnf), and the joint ELBO they train it with. Per modality a network of the unimodal
encoder's architecture gives `joint_features` features; they are concatenated, then a head gives
the mean and log-variance (MultiVae's default; its options in `JointEncoderConfig`). Only
meaningful for samples that have every modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import MultimodalVAE
from core.models.config import ModelConfig, NetworkSpec
from core.models.distributions import Diagonal, kl_divergence
from core.models.fusion import product_of_experts
from core.models.optimization import LossOutput
from core.nn.networks import build_network, validate_network_spec


def _default_joint() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [512, 512]}


class JointEncoderConfig(ModelConfig):
    """The joint encoder's options (MultiVae's default architecture)."""

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


class JointEncoded(MultimodalVAE):
    """Mixin (list it before the model's base class): `joint_features`, `joint_head` and
    `joint_encode(batch)`."""

    config: JointEncoderConfig

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
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
                if (
                    found is None
                    or found.shape[1:] != tensor.shape[1:]
                    or found.dim() != tensor.dim()
                    or (tensor.dim() and len(found) < len(tensor))
                ):
                    raise ValueError(
                        f"joint_init: 'copy' needs the feature network of {m!r} to be its "
                        f"encoder's architecture ({name} differs); use 'fresh'"
                    )
                tensor.copy_(found[: len(tensor)] if tensor.dim() else found)  # 0-d: BN's count

    def joint_encode(self, batch: Batch) -> Diagonal:
        """q(z|X) [B, D] from every modality (only meaningful for complete samples)."""
        feats = [self.joint_features[m](batch.data[m]) for m in self.names]
        if self.config.joint_feature_activation == "relu":
            feats = [torch.relu(f) for f in feats]
        out = self.joint_head(torch.cat(feats, dim=-1))
        d = self.latent_dim
        return Diagonal(out[:, :d], self.expert_scale(out[:, d:]), "normal")

    def joint_elbo(
        self, batch: Batch, observed: Tensor, weights: Mapping[str, float] | None = None
    ) -> LossOutput:
        """The joint ELBO −Σ_m w_m log p(x_m | z) + β KL(q(z|X) ‖ p), z ~ q(z|X), averaged over
        the batch; samples missing a modality add 0 (the joint encoder needs them all).
        `weights`: w_m per modality (default 1), on top of the likelihood weights λ_m."""
        complete = observed.all(0).to(batch.data[self.names[0]].dtype)
        q = self.joint_encode(batch)
        lps = self.log_likelihoods(self.decoder_outputs(q.rsample(1)), batch)
        rec = sum((weights or {}).get(m, 1.0) * lp[0] for m, lp in lps.items())
        kl = kl_divergence(q, self.prior())
        loss = ((-rec + self.config.beta * kl) * complete).mean()
        metrics = {"rec_joint": -rec.mean().detach(), "kl_joint": kl.mean().detach()}
        return LossOutput(loss, metrics)

    def joint_or_subset(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Diagonal:
        """q(z|X) from the joint encoder for the samples given every modality; the PoE of the
        given unimodal experts (no prior expert) for the others."""
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
