"""Nexus (Vasco, Yin, Melo & Paiva, 2022): per-modality VAEs below a top latent that sees every
modality through messages.

Bottom: modality m has its own latent z_m (`private/<m>`, `modalities_specific_dim`) with
encoder q(z_m|x_m) and decoder p(x_m|z_m), trained as a VAE against N(0, I):
    −λ_m log p(x_m | z_m) + β_m a(t) KL(q(z_m|x_m) ‖ N(0, I)).
Top: each observed modality sends a message msg_m = top_encoder_m(z_m) from its (detached) bottom
draw; the messages are averaged and encoded to the top latent z (`shared`), q(z | mean msg),
which reconstructs every observed bottom code:
    Σ_m γ_m [−log N(z_m; top_decoder_m(z), s_m)] + top_beta a(t) KL(q(z | msgs) ‖ N(0, I)),
with a(t) = min(1, epoch / warmup). Forced perceptual dropout: in training, each sample with k ≥ 2
observed modalities keeps, with probability `dropout_rate`, a random 1..k−1 of its messages.

The generative model is z ~ N(0, I), z_m ~ N(top_decoder_m(z), s_m²), x_m ~ p(x_m | z_m): the
bottom spaces are conditional on the top one. Generation decodes top-down with the mean of
p(z_m | z), top_decoder_m(z), as the paper and upstream do (for a missing modality, and in
unconditional samples); the likelihood is importance-sampled over both levels and scores observed
bottom codes under N(top_decoder_m(z), s_m²). s_m is the RMS residual of the top decoder, tracked
during training (a moving average, saved with the model). The training loss uses scale 1, or for
the modalities in `adapt_top_decoder_variance` the batch's RMS residual, as upstream; not
differentiated (upstream lets gradients through it: at the batch's RMS residual that gradient is
zero, so the two agree).

Incomplete data: bottom terms, messages and top reconstructions cover each sample's observed
modalities only (upstream also asks the top level to reconstruct the zeroed codes of missing
modalities); a sample's top latent comes from the messages it has.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor, nn

from core.data.batch import Batch
from core.models.base import Draw, Experts, MultimodalVAE
from core.models.config import ModelConfig, NetworkSpec
from core.models.distributions import Diagonal, kl_divergence
from core.models.latents import SHARED, Latent, LatentSpace, private_space
from core.models.optimization import LossOutput
from core.nn.networks import build_network, on_rows, validate_network_spec

_SCALE_MOMENTUM = 0.1  # weight of each training batch in the tracked residual scales s_m


def _default_top_network() -> NetworkSpec:
    return {"kind": "mlp", "hidden": [512]}


class NexusConfig(ModelConfig):
    model_type: str = "nexus"
    modalities_specific_dim: int | dict[str, int] = Field(
        16, description="size of each modality's bottom latent (one size or one per modality)"
    )
    bottom_betas: dict[str, float] | None = Field(None, description="β_m (default 1 each)")
    gammas: dict[str, float] | None = Field(
        None, description="γ_m: weights of the top level's bottom-code reconstructions"
    )
    dropout_rate: float = Field(0.0, ge=0, lt=1, description="forced perceptual dropout")
    msg_dim: int = Field(10, gt=0, le=4096, description="size of each modality's message")
    aggregator: Literal["mean"] = "mean"
    top_beta: float = Field(1.0, ge=0, description="weight of the top KL")
    warmup: int = Field(20, ge=1, description="epochs over which a(t) rises to 1")
    adapt_top_decoder_variance: list[str] | None = Field(
        None, description="modalities whose top reconstruction uses s_m instead of 1 in the loss"
    )
    top_network: NetworkSpec = Field(
        default_factory=_default_top_network,
        description="architecture of the top encoders, the joint encoder and the top decoders",
    )

    @model_validator(mode="after")
    def _known_modalities(self) -> NexusConfig:
        names = set(self.modality_names)
        self.check_modality_sizes("modalities_specific_dim")
        self.check_modality_weights("bottom_betas", "gammas")
        if not set(self.adapt_top_decoder_variance or []) <= names:
            raise ValueError(f"adapt_top_decoder_variance: modalities of {sorted(names)}")
        validate_network_spec(self.top_network)
        return self


class Nexus(MultimodalVAE):
    model_type = "nexus"
    config_class = NexusConfig
    config: NexusConfig

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__(config)
        cfg, top = self.config, self.config.top_network
        dims = self.private_dims
        self.top_encoders = nn.ModuleDict(
            {m: build_network(top, (dims[m],), (cfg.msg_dim,)) for m in self.names}
        )
        self.joint_encoder = build_network(top, (cfg.msg_dim,), (2 * self.latent_dim,))
        self.top_decoders = nn.ModuleDict(
            {m: build_network(top, (self.latent_dim,), (dims[m],)) for m in self.names}
        )
        self.register_buffer("bottom_scales", torch.ones(len(self.names)))

    def encoder_output_size(self, modality: str) -> int:
        """Bottom encoders give only their own latent's mean and scale."""
        return 2 * self.private_dims[modality]

    # ---- spaces and priors --------------------------------------------------------------------
    def declare_latent_spaces(self) -> list[LatentSpace]:
        top = LatentSpace(SHARED, self.latent_dim, self.posterior_family)
        bottom = [
            LatentSpace(private_space(m), d, self.posterior_family, conditional=True)
            for m, d in self.private_dims.items()
        ]
        return [top, *bottom]

    def decoder_inputs(self, modality: str) -> tuple[str, ...]:
        return (private_space(modality),)

    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Diagonal:
        if space == SHARED:
            return super().prior(space)
        if latent is None:
            raise ValueError(f"{space}: its prior depends on the top latent's codes")
        m = space.removeprefix(private_space(""))
        loc = on_rows(self.top_decoders[m], latent.codes[SHARED])
        scale = self.bottom_scales[self.index[m]].expand_as(loc)
        return Diagonal(loc, scale, self.posterior_family)

    def prior_draw(
        self,
        space: str,
        shape: tuple[int, int],
        latent: Latent,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Bottom codes decoded top-down: the top decoder's output, the mean of p(z_m | z)."""
        if space == SHARED:
            return super().prior_draw(space, shape, latent, generator)
        return self.prior(space, latent).loc

    def split_encoding(self, m: str, out: Tensor) -> tuple[Diagonal, Diagonal | None]:
        """No per-modality expert over the top latent (it comes from the messages): a
        zero-width shared part, and the bottom posterior q(z_m | x_m)."""
        p = self.private_dims[m]
        none = Diagonal(out[..., :0], torch.ones_like(out[..., :0]), self.posterior_family)
        return none, self.gaussian(out[..., : 2 * p])

    # ---- inference ----------------------------------------------------------------------------
    def top_posterior(self, bottom: dict[str, Tensor], keep: Tensor) -> Diagonal:
        """q(z | messages) [S, B, D] from bottom codes [S, B, D_m], averaging the messages of the
        modalities marked in `keep` [M, B]."""
        msgs = torch.stack([on_rows(self.top_encoders[m], bottom[m].detach()) for m in self.names])
        weights = keep.to(msgs.dtype).unsqueeze(1).unsqueeze(-1)  # [M, 1, B, 1]
        mean = (msgs * weights).sum(0) / weights.sum(0).clamp_min(1.0)
        return self.gaussian(on_rows(self.joint_encoder, mean))

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        """Bottom codes of the given modalities from their encoders, the top code from their
        messages, the other bottom codes from their priors given the top code."""
        bottom = {m: draw(private_space(m), q) for m, q in experts.private.items()}
        top = self.top_posterior(bottom, mask)
        latent = Latent({SHARED: draw(SHARED, top)}, {SHARED: top}, {}, self.primary_space)
        for i, m in enumerate(self.names):
            space, rows = private_space(m), mask[i]
            prior = self.prior(space, latent)  # [S, B, D_m]
            q = experts.private[m]
            keep = rows.unsqueeze(-1)
            mixed = Diagonal(
                torch.where(keep, q.loc, prior.loc), torch.where(keep, q.scale, prior.scale),
                q.family,
            )  # fmt: skip
            latent.codes[space] = torch.where(keep, bottom[m], prior.loc)
            latent.posteriors[space] = mixed
            latent.observed[space] = rows
        return latent

    # ---- training -----------------------------------------------------------------------------
    def _kept_messages(self, observed: Tensor) -> Tensor:
        """Forced perceptual dropout [M, B]: with probability `dropout_rate`, a sample with
        k ≥ 2 observed modalities keeps a random 1..k−1 of them."""
        rate = self.config.dropout_rate
        if not self.training or rate == 0:
            return observed
        count = observed.sum(0)
        drop = (torch.rand(count.shape, device=count.device) < rate) & (count >= 2)
        keep_n = 1 + (torch.rand(count.shape, device=count.device) * (count - 1)).long()
        scores = torch.rand(observed.shape, device=count.device).masked_fill(~observed, 2.0)
        rank = scores.argsort(0).argsort(0)  # the observed modalities first, in random order
        kept = observed & (rank < keep_n)
        return torch.where(drop, kept, observed)

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        cfg, a_t = self.config, self.annealing(self.config.warmup)
        seen = observed.to(experts.shared.loc.dtype)  # [M, B]
        bottom = {m: q.rsample(1) for m, q in experts.private.items()}  # [1, B, D_m]
        lps = self.log_likelihoods(
            {m: self.decoders[m](bottom[m][0]).unsqueeze(0) for m in self.names}, batch
        )
        bottom_loss = torch.zeros_like(seen[0])
        for i, m in enumerate(self.names):
            kl = kl_divergence(experts.private[m], super().prior(private_space(m)))
            beta_m = (cfg.bottom_betas or {}).get(m, 1.0)
            bottom_loss = bottom_loss - lps[m][0] + beta_m * a_t * kl * seen[i]
        top = self.top_posterior(bottom, self._kept_messages(observed))
        z = top.rsample(1)[0]  # [1, B, D]
        top_rec = torch.zeros_like(seen[0])
        for i, m in enumerate(self.names):
            target = bottom[m].detach()
            loc = on_rows(self.top_decoders[m], z)
            residual = ((target - loc) ** 2)[0]
            rms = self._track_scale(i, residual, observed[i])
            adapt = m in (cfg.adapt_top_decoder_variance or [])
            nll = _normal_nll(residual, rms if adapt else 1.0)
            top_rec = top_rec + (cfg.gammas or {}).get(m, 1.0) * nll * seen[i]
        top_kl = kl_divergence(top, super().prior())[0]
        loss = (bottom_loss + top_rec + cfg.top_beta * a_t * top_kl).mean()
        metrics = {"bottom": bottom_loss.mean().detach(), "top_rec": top_rec.mean().detach(),
                   "top_kl": top_kl.mean().detach()}  # fmt: skip
        return LossOutput(loss, metrics)

    @torch.no_grad()
    def _track_scale(self, i: int, residual: Tensor, rows: Tensor) -> Tensor:
        """The batch's RMS residual of top decoder i on the observed samples (1 when none); in
        training, folded into the moving average s_i the generative model uses. Masked sums, no
        host synchronisation in the training step."""
        weight = rows.to(residual.dtype).unsqueeze(-1)
        count = (weight.sum() * residual.shape[-1]).clamp_min(1.0)
        seen = rows.any()
        rms = torch.where(seen, ((residual * weight).sum() / count).sqrt().clamp_min(1e-4), 1.0)
        if self.training:
            self.bottom_scales[i] = torch.where(
                seen, self.bottom_scales[i].lerp(rms, _SCALE_MOMENTUM), self.bottom_scales[i]
            )
        return rms


def _normal_nll(squared_residual: Tensor, scale: Tensor | float) -> Tensor:
    """−log N(r; 0, s²) summed over the last dimension, from r² [B, D]."""
    scale = torch.as_tensor(scale, dtype=squared_residual.dtype, device=squared_residual.device)
    per = 0.5 * squared_residual / scale**2 + scale.log() + 0.5 * math.log(2 * math.pi)
    return per.sum(-1)
