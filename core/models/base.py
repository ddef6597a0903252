"""`MultimodalVAE`: the API every model implements, and the machinery they share.

A subclass declares `model_type`, its `config_class`, how the unimodal experts are fused into a
posterior (`posterior`) and its training objective (`forward`). Encoding, decoding, generation,
sampling, likelihood estimation and persistence are written once, here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from core.data.batch import Batch
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Family, Posterior, standard
from core.nn.likelihoods import build_likelihood
from core.nn.networks import build_network

MODEL_REGISTRY: dict[str, type[MultimodalVAE]] = {}
_LOGVAR_RANGE = (-30.0, 20.0)


@dataclass
class LossOutput:
    """`loss`: scalar to minimise (mean over samples); `metrics`: detached scalars to log."""

    loss: Tensor
    metrics: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Latent:
    """Latent codes with an explicit sample dimension: `z` [S, B, D]; `private[m]` [S, B, D_m]."""

    z: Tensor
    posterior: Posterior | None = None
    private: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Stage:
    """A training stage: `epochs` (None = until the end) and the parameters it trains."""

    name: str
    epochs: int | None = None
    parameters: Callable[[nn.Module], Iterable[nn.Parameter]] | None = None


class MultimodalVAE(nn.Module):
    model_type: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    posterior_family: ClassVar[Family] = "normal"
    sampler: Any = None  # a fitted latent sampler (core.samplers), saved in `sampler/`

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "model_type" in cls.__dict__:
            MODEL_REGISTRY[cls.model_type] = cls

    def __init__(self, config: ModelConfig | dict[str, Any]) -> None:
        super().__init__()
        if isinstance(config, dict):
            config = self.config_class.model_validate({"model_type": self.model_type, **config})
        elif not isinstance(config, self.config_class):
            config = self.config_class.model_validate(config.model_dump())
        self.config = config
        self.names: list[str] = config.modality_names
        self.index = {m: i for i, m in enumerate(self.names)}
        self.shapes = {m.name: tuple(m.shape) for m in config.modalities}
        self.value_ranges = {m.name: m.value_range for m in config.modalities}
        self.latent_dim = config.latent_dim
        self.private_dims = {m: self._private_dim(m) for m in self.names}
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.likelihoods = nn.ModuleDict()
        for spec in config.modalities:
            m, shape = spec.name, tuple(spec.shape)
            enc_out = 2 * (self.latent_dim + self.private_dims[m])
            dec_in = self.latent_dim + self.private_dims[m]
            self.encoders[m] = build_network(spec.encoder or config.encoder, shape, (enc_out,))
            self.decoders[m] = build_network(spec.decoder or config.decoder, (dec_in,), shape)
            self.likelihoods[m] = build_likelihood(spec.likelihood, shape)
        self.register_buffer("rec_weights", torch.tensor(config.rec_weights()), persistent=False)
        self.epoch = 0  # 1-based epoch set by the Trainer; drives KL annealing

    # ---- hooks for subclasses -------------------------------------------------------------
    def _private_dim(self, modality: str) -> int:
        """Size of the modality-specific latent (0 = the model has none)."""
        return 0

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        """The joint posterior of each sample from its modalities marked in `mask` [M, B]."""
        raise NotImplementedError

    def forward(self, batch: Batch) -> LossOutput:
        raise NotImplementedError

    @property
    def stages(self) -> list[Stage]:
        return [Stage("train")]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def annealing(self, warmup: int) -> float:
        """min(1, epoch / warmup) while training; 1 at evaluation, so eval losses compare."""
        if not self.training or warmup <= 0:
            return 1.0
        return min(1.0, max(self.epoch, 1) / warmup)

    # ---- shared machinery -----------------------------------------------------------------
    def clean(self, batch: Batch) -> Batch:
        """Zero every value under a False mask: no model can depend on it."""
        data = {}
        for m in self.names:
            x, k = batch.data[m], batch.masks[m]
            data[m] = torch.where(
                k.view(-1, *([1] * (x.ndim - 1))),
                x,
                torch.zeros((), dtype=x.dtype, device=x.device),
            )
        return Batch(data, {m: batch.masks[m] for m in self.names}, batch.labels)

    def expert_scale(self, raw: Tensor) -> Tensor:
        """Encoder output -> posterior scale (log-variance for Normal experts)."""
        return torch.exp(0.5 * raw.clamp(*_LOGVAR_RANGE))

    def split_encoding(self, m: str, out: Tensor) -> tuple[Diagonal, Diagonal | None]:
        d, p = self.latent_dim, self.private_dims[m]
        shared = Diagonal(
            out[..., :d], self.expert_scale(out[..., d : 2 * d]), self.posterior_family
        )
        if not p:
            return shared, None
        rest = out[..., 2 * d :]
        return shared, Diagonal(
            rest[..., :p], self.expert_scale(rest[..., p:]), self.posterior_family
        )

    def encode_unimodal(self, batch: Batch) -> tuple[Diagonal, dict[str, Diagonal]]:
        """Every modality's expert, stacked [M, B, D]; private posteriors per modality."""
        locs, scales, private = [], [], {}
        for m in self.names:
            shared, own = self.split_encoding(m, self.encoders[m](batch.data[m]))
            locs.append(shared.loc)
            scales.append(shared.scale)
            if own is not None:
                private[m] = own
        return Diagonal(torch.stack(locs), torch.stack(scales), self.posterior_family), private

    def availability(self, batch: Batch, given: Iterable[str] | None = None) -> Tensor:
        """Bool [M, B]: modality observed in the sample and among `given` (all when None)."""
        missing = [m for m in self.names if m not in batch.data]
        if missing:
            raise ValueError(f"batch: missing modalities {missing} (give zeros and a False mask)")
        given_set = set(self.names if given is None else given)
        unknown = given_set - set(self.names)
        if unknown:
            raise ValueError(f"given: unknown modalities {sorted(unknown)}; known: {self.names}")
        rows = [batch.masks[m] & (m in given_set) for m in self.names]
        mask = torch.stack(rows)
        empty = (~mask.any(0)).nonzero().flatten()
        if len(empty):
            raise ValueError(
                f"given: sample {int(empty[0])} has none of the given modalities observed"
            )
        return mask

    def prior(self) -> Diagonal:
        """p(z) with parameters of shape [D]."""
        return standard((self.latent_dim,), self.posterior_family, like=self.rec_weights)

    def private_prior(self, m: str) -> Diagonal:
        return standard((self.private_dims[m],), self.posterior_family, like=self.rec_weights)

    def sample_private(
        self,
        m: str,
        posterior: Diagonal | None,
        mask: Tensor | None,
        n_samples: int,
        batch_size: int,
        generator: torch.Generator | None = None,
        mean: bool = False,
    ) -> Tensor:
        """w_m [S, B, D_m]: from q(w|x_m) where available (mask [B]), else from the prior."""
        prior = self.private_prior(m)
        w = prior.rsample(n_samples * batch_size, generator).view(n_samples, batch_size, -1)
        if posterior is None or mask is None:
            return w
        own = (
            posterior.loc.expand(n_samples, -1, -1)
            if mean
            else posterior.rsample(n_samples, generator)
        )
        return torch.where(mask.view(1, -1, 1), own, w)

    def decoder_outputs(
        self,
        latent: Latent | Tensor,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Raw decoder outputs [S, B, *shape] for each requested modality."""
        if isinstance(latent, Tensor):
            latent = Latent(latent)
        z = latent.z
        s, b = z.shape[:2]
        outs = {}
        for m in self.names if modalities is None else modalities:
            if m not in self.decoders:
                raise ValueError(f"targets: unknown modality {m!r}; known: {self.names}")
            inp = z
            if self.private_dims[m]:
                w = latent.private.get(m)
                if w is None:
                    w = self.sample_private(m, None, None, s, b, generator)
                inp = torch.cat([z, w], dim=-1)
            out = self.decoders[m](inp.reshape(s * b, -1))
            outs[m] = out.reshape(s, b, *self.shapes[m])
        return outs

    def log_likelihoods(
        self, outputs: dict[str, Tensor], batch: Batch, weighted: bool = True
    ) -> dict[str, Tensor]:
        """Per modality λ_m · log p(x_m | z) [S, B], zero where the modality is not observed."""
        result = {}
        for m, out in outputs.items():
            lp = self.likelihoods[m].log_prob(out, batch.data[m])
            if weighted:
                lp = lp * self.rec_weights[self.index[m]]
            result[m] = lp * batch.masks[m].to(lp.dtype)
        return result

    def output_mean(self, m: str, out: Tensor) -> Tensor:
        """Mean of p(x_m | z) from decoder output, clamped to the modality's `value_range`."""
        mean = self.likelihoods[m].mean(out)
        bounds = self.value_ranges[m]
        return mean if bounds is None else mean.clamp(*bounds)

    # ---- public API -----------------------------------------------------------------------
    def encode(
        self,
        batch: Batch,
        given: Iterable[str] | None = None,
        n_samples: int = 1,
        mean: bool = False,
        generator: torch.Generator | None = None,
    ) -> Latent:
        """Posterior from the modalities in `given` that each sample has; z is [S, B, D]."""
        batch = self.clean(batch)
        mask = self.availability(batch, given)
        experts, private = self.encode_unimodal(batch)
        post = self.posterior(batch, mask, experts)
        if mean:
            z = post.mean.unsqueeze(0).expand(n_samples, -1, -1)
        else:
            z = post.rsample(n_samples, generator)
        own = {
            m: self.sample_private(
                m, q, mask[self.index[m]], n_samples, batch.size, generator, mean
            )
            for m, q in private.items()
        }
        return Latent(z, post, own)

    def decode(
        self, latent: Latent | Tensor, modalities: Iterable[str] | None = None
    ) -> dict[str, Distribution]:
        """p(x_m | z) for each requested modality, batch shape [S, B]."""
        outs = self.decoder_outputs(latent, modalities)
        return {m: self.likelihoods[m].distribution(o) for m, o in outs.items()}

    @torch.no_grad()
    def generate(
        self,
        batch: Batch,
        given: Iterable[str] | None = None,
        targets: Iterable[str] | None = None,
        n_samples: int = 1,
        generator: torch.Generator | None = None,
        mean_latent: bool = False,
    ) -> dict[str, Tensor]:
        """Cross-modal generation: decoder means [S, B, *shape] of `targets` from `given`."""
        latent = self.encode(batch, given, n_samples, mean=mean_latent, generator=generator)
        outs = self.decoder_outputs(latent, targets, generator)
        return {m: self.output_mean(m, o) for m, o in outs.items()}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        sampler: Any = None,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Unconditional samples: decoder means [n, *shape], latents from the prior or `sampler`."""
        if sampler is None:
            z = self.prior().rsample(n, generator).unsqueeze(0)
            latent = Latent(z)
        else:
            latent = sampler.sample(n, generator=generator)
            if isinstance(latent, Tensor):
                latent = Latent(latent.unsqueeze(0) if latent.ndim == 2 else latent)
        outs = self.decoder_outputs(latent, modalities, generator)
        return {m: self.output_mean(m, o)[0] for m, o in outs.items()}

    @torch.no_grad()
    def log_likelihood(
        self,
        batch: Batch,
        k: int = 1000,
        max_batch: int = 65536,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Importance-sampled log p(x_observed) [B] with the joint posterior as proposal.

        log p(x) ≈ logsumexp_k [log p(x|z_k) + log p(z_k) - log q(z_k|x)] - log K. Draws come in
        chunks of K (at most `max_batch` decoder evaluations each) for the same samples, and the
        log-sum-exp is taken over all K at the end, so chunking never mixes samples.
        """
        batch = self.clean(batch)
        mask = self.availability(batch)
        experts, private = self.encode_unimodal(batch)
        post = self.posterior(batch, mask, experts)
        prior = self.prior()
        chunk = max(1, max_batch // batch.size)
        log_w = []
        for start in range(0, k, chunk):
            kc = min(chunk, k - start)
            z = post.rsample(kc, generator)
            lw = prior.log_prob(z) - post.log_prob(z)
            own = {}
            for m, q in private.items():
                w = q.rsample(kc, generator)
                obs = batch.masks[m].to(w.dtype)
                lw = lw + obs * (self.private_prior(m).log_prob(w) - q.log_prob(w))
                own[m] = w
            outs = self.decoder_outputs(Latent(z, post, own), generator=generator)
            for lp in self.log_likelihoods(outs, batch, weighted=False).values():
                lw = lw + lp
            log_w.append(lw)
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    # ---- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path, training_info: dict | None = None) -> Path:
        from core.persistence import save_model

        return save_model(self, directory, training_info)

    @classmethod
    def from_pretrained(cls, source: str | Path, revision: str | None = None) -> MultimodalVAE:
        from core.persistence import load_model

        model = load_model(source, revision=revision)
        if cls is not MultimodalVAE and not isinstance(model, cls):
            raise TypeError(f"{source}: holds a {model.model_type!r} model, not {cls.model_type!r}")
        return model
