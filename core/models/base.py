"""`MultimodalVAE`: the API every model implements, and the machinery they share.

A subclass declares `model_type`, its `config_class` and its training objective (`objective`),
and usually how unimodal experts fuse into the shared posterior (`posterior`). A model with
other latent structure (private spaces, levels, flows) declares its spaces
(`declare_latent_spaces`, `decoder_inputs`) and how it infers them (`infer`) and its priors
(`prior`). Encoding, decoding, generation, sampling, likelihood estimation, persistence and the
training hooks (`core.models.optimization`) are written once, here; see docs/adding-a-model.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributions import Distribution

from core.data.batch import Batch
from core.models import pretrained
from core.models.config import ModelConfig
from core.models.distributions import Diagonal, Family, Noise, Posterior, kl_divergence, standard
from core.models.latents import SHARED, Latent, LatentSpace, private_space
from core.models.optimization import LossOutput, Trainable
from core.models.registry import register
from core.nn.likelihoods import build_likelihood
from core.nn.networks import build_network

if TYPE_CHECKING:
    from core.samplers.base import Sampler

_LOGVAR_RANGE = (-30.0, 20.0)
DECODE_ROWS = 2048  # decoder rows per pass when scoring many draws on the CPU


@dataclass
class Experts:
    """Every modality's encoding: `shared` stacked [M, B, D] (fused into the shared posterior),
    `private[m]` the posterior of modality m's own latent [B, D_m] (models with private spaces),
    `features[m]` the intermediate features of a hierarchical encoder (MHVAE's skips)."""

    shared: Diagonal
    private: dict[str, Diagonal] = field(default_factory=dict)
    features: dict[str, list[Tensor]] = field(default_factory=dict)


@dataclass(frozen=True)
class Draw:
    """How `infer` turns each space's posterior into codes [S, B, D]: `n_samples` draws with
    `generator`, the posterior mean (`mean`), or the noise drawn beforehand for a space. A
    posterior conditional on another space's draws (batch shape [S, B]) gives one draw each."""

    n_samples: int = 1
    mean: bool = False
    generator: torch.Generator | None = None
    noise: Mapping[str, Noise] | None = None

    def __call__(self, space: str, posterior: Posterior) -> Tensor:
        per_draw = len(posterior.batch_shape) == 2
        if self.mean:
            mean = posterior.mean
            return mean if per_draw else mean.unsqueeze(0).expand(self.n_samples, *mean.shape)
        if self.noise is not None and space in self.noise:
            return posterior.reparameterize(self.noise[space])
        if per_draw:
            return posterior.rsample(1, self.generator)[0]
        return posterior.rsample(self.n_samples, self.generator)


class MultimodalVAE(Trainable):
    model_type: ClassVar[str]
    config_class: ClassVar[type[ModelConfig]] = ModelConfig
    posterior_family: Family = "normal"
    primary_space: ClassVar[str] = SHARED  # the space `Latent.z` names (the representation)
    # encoders give codes, not distributions (autoencoders): no likelihood p(x) is defined
    deterministic: ClassVar[bool] = False
    # False: no prior over the codes, so unconditional samples need a fitted latent sampler
    has_prior: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "forward" in cls.__dict__:
            raise TypeError(
                f"{cls.__name__}: implement objective(batch, observed, experts), not forward(): "
                "the base forward cleans the batch so no model depends on masked values"
            )
        if "model_type" in cls.__dict__:
            register(cls)

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
        self.latent_spaces = {s.name: s for s in self.declare_latent_spaces()}
        self.decoder_spaces = {m: self.decoder_inputs(m) for m in self.names}
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.likelihoods = nn.ModuleDict()
        for spec in config.modalities:
            m, shape = spec.name, tuple(spec.shape)
            enc_out = self.encoder_output_size(m)
            dec_in = sum(self.latent_spaces[s].dim for s in self.decoder_spaces[m])
            if enc_out:  # 0: the model encodes nothing from this modality (DVCCA)
                self.encoders[m] = build_network(spec.encoder or config.encoder, shape, (enc_out,))
            self.decoders[m] = build_network(spec.decoder or config.decoder, (dec_in,), shape)
            self.likelihoods[m] = build_likelihood(spec.likelihood, shape)
        self.register_buffer("rec_weights", torch.tensor(config.rec_weights()), persistent=False)
        self.sampler: Sampler | None = None  # a fitted latent sampler, saved in `sampler/`

    # ---- hooks for subclasses -------------------------------------------------------------
    def _private_dim(self, modality: str) -> int:
        """Size of the modality-specific latent (0 = the model has none): read from the config's
        `modalities_specific_dim` where the model has one, one size for every modality or a dict
        per modality (a modality left out has none)."""
        sizes = getattr(self.config, "modalities_specific_dim", None)
        if isinstance(sizes, dict):
            return sizes.get(modality, 0)
        return sizes or 0

    def encoder_output_size(self, modality: str) -> int:
        """Outputs of the modality's encoder: mean and scale of the shared latent and of its
        private one (models whose encoders give features instead say how many; 0: none)."""
        return 2 * (self.latent_dim + self.private_dims[modality])

    def declare_latent_spaces(self) -> list[LatentSpace]:
        """The model's latent spaces, parents before the spaces whose priors depend on them.
        Default: `shared`, and `private/<m>` for each modality with a private latent."""
        spaces = [LatentSpace(SHARED, self.latent_dim, self.posterior_family)]
        spaces += [
            LatentSpace(private_space(m), d, self.posterior_family)
            for m, d in self.private_dims.items()
            if d
        ]
        return spaces

    def decoder_inputs(self, modality: str) -> tuple[str, ...]:
        """The spaces whose codes, concatenated in this order, modality's decoder reads."""
        if self.private_dims[modality]:
            return (SHARED, private_space(modality))
        return (SHARED,)

    def decoder_context(self, modality: str) -> tuple[str, ...]:
        """Entries of `Latent.context` the modality's decoder reads after the codes (a
        conditional model's conditioning features); none by default."""
        return ()

    def posterior(self, batch: Batch, mask: Tensor, experts: Diagonal) -> Posterior:
        """The shared posterior of each sample from its modalities marked in `mask` [M, B]."""
        raise NotImplementedError

    def objective(self, batch: Batch, observed: Tensor, experts: Experts) -> LossOutput:
        """The training loss on a cleaned batch: `observed` [M, B] says which modalities each
        sample has, `experts` are every modality's encodings."""
        raise NotImplementedError

    def prior(self, space: str = SHARED, latent: Latent | None = None) -> Posterior:
        """p(space): parameters [D] for a space with an independent prior; a conditional space
        reads its parents' codes from `latent` and has parameters [S, B, D]."""
        found = self.latent_spaces[space]
        return standard((found.dim,), found.family, like=self.rec_weights)

    def infer(self, batch: Batch, mask: Tensor, experts: Experts, draw: Draw) -> Latent:
        """Codes in every space from the modalities marked in `mask` [M, B]. Default: the shared
        posterior (`posterior`), and each private space from its modality where the sample has
        it, from its prior where not."""
        shared = self.posterior(batch, mask, experts.shared)
        latent = Latent({SHARED: draw(SHARED, shared)}, {SHARED: shared}, {}, self.primary_space)
        for m, q in experts.private.items():
            space, rows = private_space(m), mask[self.index[m]]
            prior = self.absent_private(m)
            keep = rows.unsqueeze(-1)
            q = Diagonal(
                torch.where(keep, q.loc, prior.loc),
                torch.where(keep, q.scale, prior.scale),
                q.family,
            )
            latent.codes[space], latent.posteriors[space] = draw(space, q), q
            latent.observed[space] = rows
        return latent

    def absent_private(self, modality: str) -> Diagonal:
        """What a private code of `modality` is drawn from where the modality is not given
        (cross-modal generation): its prior, unless a model keeps an auxiliary one."""
        return self.prior(private_space(modality))

    # ---- shared machinery -----------------------------------------------------------------
    def forward(self, batch: Batch, return_outputs: bool = False) -> LossOutput:
        """The training objective on `batch`, after zeroing every value under a False mask;
        with `return_outputs`, also the batch's embeddings and reconstructions (`monitor`)."""
        batch = self.clean(batch)
        out = self.objective(batch, batch.mask_matrix(self.names), self.unimodal_experts(batch))
        if return_outputs:
            out.outputs = self.monitor(batch)
        return out

    @torch.no_grad()
    def monitor(self, batch: Batch) -> dict[str, Tensor]:
        """What to watch during training, detached: `embedding/<space>` [B, D], each latent
        space's code from every observed modality (posterior mean), and `reconstruction/<m>`
        [B, *shape], the decoder means of the modalities the model generates from it."""
        latent = self.encode(batch, mean=True)
        outputs = {f"embedding/{space}": code[0] for space, code in latent.codes.items()}
        decoded = self.decode_mean(latent, self.generated)
        outputs |= {f"reconstruction/{m}": x[0] for m, x in decoded.items()}
        return outputs

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

    def annealing(self, warmup: int, per_step: bool = False) -> float | Tensor:
        """Weight of an annealed term while training: min(1, epoch / warmup), from 1/warmup in
        the first epoch; or, `per_step`, progress / warmup, rising every step from 0 at the first
        one, and 1 from epoch `warmup` on (MultiVae's MVAE). 1 at evaluation, so evaluation
        losses compare across epochs. A float64 scalar tensor while training, read from `clock`
        so that a compiled forward does not recompile as it changes."""
        if not self.training or warmup <= 0:
            return 1.0
        epoch, progress = self.clock
        if per_step:
            return torch.where(epoch >= warmup, 1.0, progress / warmup)
        return (epoch.clamp(min=1) / warmup).clamp(max=1.0)

    def expert_scale(self, raw: Tensor) -> Tensor:
        """Encoder output -> posterior scale (log-variance for Normal experts)."""
        return torch.exp(0.5 * raw.clamp(*_LOGVAR_RANGE))

    def gaussian(self, out: Tensor) -> Diagonal:
        """The posterior-family Gaussian whose mean and raw scale are the two halves of a
        network's output [..., 2D]."""
        d = out.shape[-1] // 2
        return Diagonal(out[..., :d], self.expert_scale(out[..., d:]), self.posterior_family)

    def split_encoding(self, m: str, out: Tensor) -> tuple[Diagonal, Diagonal | None]:
        d, p = self.latent_dim, self.private_dims[m]
        shared = self.gaussian(out[..., : 2 * d])
        return shared, (self.gaussian(out[..., 2 * d : 2 * (d + p)]) if p else None)

    def unimodal_experts(self, batch: Batch) -> Experts:
        """Every modality's encoding (see `Experts`)."""
        locs, scales, private = [], [], {}
        for m in self.names:
            shared, own = self.split_encoding(m, self.encoders[m](batch.data[m]))
            locs.append(shared.loc)
            scales.append(shared.scale)
            if own is not None:
                private[m] = own
        stacked = Diagonal(torch.stack(locs), torch.stack(scales), self.posterior_family)
        return Experts(stacked, private)

    def private_draws(self, experts: Experts, n_samples: int) -> dict[str, Tensor]:
        """Codes [S, B, D_m] of every private space, drawn from its modality's encoding."""
        return {private_space(m): q.rsample(n_samples) for m, q in experts.private.items()}

    def private_kl(
        self, experts: Experts, batch: Batch, weights: Mapping[str, float] | None = None
    ) -> Tensor:
        """Σ_m w_m KL(q(w_m|x_m) ‖ p(w_m)) [B] over the private latents of the modalities each
        sample has (w_m = 1 unless `weights` says otherwise)."""
        total = torch.zeros(batch.size, device=batch.device)
        for m, q in experts.private.items():
            kl = kl_divergence(q, self.prior(private_space(m)))
            w = 1.0 if weights is None else weights.get(m, 1.0)
            total = total + w * kl * batch.masks[m].to(kl.dtype)
        return total

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
        for m in self.required_inputs:
            lacking = (~mask[self.index[m]]).nonzero().flatten()
            if len(lacking):
                raise ValueError(
                    f"given: sample {int(lacking[0])} is not given {m!r}; this "
                    f"{self.model_type} model needs {self.required_inputs} to encode a sample"
                )
        return mask

    @property
    def sampled_spaces(self) -> dict[str, int]:
        """Dimensions of the spaces with an independent prior: those a fitted sampler covers."""
        return {n: s.dim for n, s in self.latent_spaces.items() if not s.conditional}

    def prior_draw(
        self,
        space: str,
        shape: tuple[int, int],
        latent: Latent,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Codes [S, B, D] (`shape` = (S, B)) of `space` from its prior; a conditional space's
        prior reads its parents' codes in `latent`."""
        if self.latent_spaces[space].conditional:
            return self.prior(space, latent).rsample(1, generator)[0]
        s, b = shape
        return self.prior(space).rsample(s * b, generator).view(s, b, -1)

    def draw_prior(
        self, n: int, sampler: Sampler | None = None, generator: torch.Generator | None = None
    ) -> Latent:
        """Latents [1, n, D] in every space, parents first: from `sampler` in the spaces it
        covers, from the model's priors elsewhere (conditional spaces from their parents)."""
        covered = {} if sampler is None else sampler.covering(self.sampled_spaces)
        latent = Latent({}, primary=self.primary_space)
        for space in self.latent_spaces:
            if space in covered:
                latent.codes[space] = sampler.sample_space(space, n, generator).unsqueeze(0)
            else:
                latent.codes[space] = self.prior_draw(space, (1, n), latent, generator)
        return latent

    def complete(self, latent: Latent | Tensor, generator: torch.Generator | None = None) -> Latent:
        """`latent` (or primary-space codes) with every absent space drawn from its prior."""
        if isinstance(latent, Tensor):
            latent = Latent({self.primary_space: latent}, primary=self.primary_space)
        absent = [s for s in self.latent_spaces if s not in latent.codes]
        if not absent:
            return latent
        full = Latent(dict(latent.codes), dict(latent.posteriors), dict(latent.observed))
        full.primary, full.context = latent.primary, dict(latent.context)
        shape = (latent.n_samples, latent.batch_size)
        for space in absent:
            full.codes[space] = self.prior_draw(space, shape, full, generator)
        return full

    def decoder_outputs(
        self,
        latent: Latent | Tensor,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Raw decoder outputs [S, B, *shape] for each requested modality; spaces the latent
        lacks are drawn from their priors."""
        wanted = self.generated if modalities is None else list(modalities)
        for m in wanted:
            if m in self.names and m not in self.decoders:
                raise ValueError(
                    f"targets: {m!r} is an input of this {self.model_type} model, not generated; "
                    f"it generates {self.generated}"
                )
            if m not in self.decoders:
                raise ValueError(f"targets: unknown modality {m!r}; known: {self.names}")
        if isinstance(latent, Tensor) or any(
            s not in latent.codes for m in wanted for s in self.decoder_spaces[m]
        ):
            latent = self.complete(latent, generator)
        s, b = latent.n_samples, latent.batch_size
        outs = {}
        for m in wanted:
            codes = [latent.codes[sp] for sp in self.decoder_spaces[m]]
            for key in self.decoder_context(m):
                if key not in latent.context:
                    raise ValueError(
                        f"targets: decoding {m!r} needs the {key} of this model's inputs; "
                        "encode samples that have them"
                    )
                codes.append(latent.context[key])
            inp = codes[0] if len(codes) == 1 else torch.cat(codes, dim=-1)
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

    def cross_reconstruction(self, codes: Tensor, batch: Batch, observed: Tensor) -> Tensor:
        """(1/M_o²) Σ_j Σ_i −λ_i log p(x_i | z_j) [B]: every observed modality i decoded from
        the code z_j [M, B, D] of every observed modality j, M_o of them per sample
        (`observed` [M, B]); the coordinated models' reconstruction term."""
        log_p = sum(self.log_likelihoods(self.decoder_outputs(codes), batch).values())  # [M, B]
        sources = observed.to(log_p.dtype)
        return -(log_p * sources).sum(0) / sources.sum(0).clamp_min(1.0) ** 2

    def output_mean(self, m: str, out: Tensor) -> Tensor:
        """Mean of p(x_m | z) from decoder output, clamped to the modality's `value_range`."""
        mean = self.likelihoods[m].mean(out)
        bounds = self.value_ranges[m]
        return mean if bounds is None else mean.clamp(*bounds)

    def log_weights(self, batch: Batch, latent: Latent) -> Tensor:
        """log p(x_observed, codes) − log q(codes | x) [S, B]: one importance weight per draw."""
        log_w = torch.zeros(latent.n_samples, latent.batch_size, device=batch.device)
        for space, codes in latent.codes.items():
            posterior = latent.posteriors.get(space)
            if posterior is not None:  # a space drawn from its prior has weight 1
                prior = self.prior(space, latent)
                term = prior.log_prob(codes) - posterior.log_prob(codes)
                observed = latent.observed.get(space)
                # a code standing in for a missing modality feeds no scored decoder: it
                # integrates out exactly (weight 1), whatever it was drawn from
                log_w = log_w + (term if observed is None else term * observed.to(term.dtype))
        return log_w + self.log_likelihood_of_draws(latent, batch)

    def log_likelihood_of_draws(
        self,
        latent: Latent,
        batch: Batch,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Σ_m log p(x_m | z) [S, B] over `modalities` (default: every decoded one), unweighted.

        On the CPU the draws are decoded `DECODE_ROWS` rows at a time: K = 1000 draws of a
        batch make decoder activations of hundreds of MB, and element-wise passes over such
        tensors run at memory speed; slices that stay in cache score the same values (decoders
        are per row) about 2x faster (bench/RESULTS.md, evaluation speed)."""
        wanted = self.generated if modalities is None else list(modalities)
        spaces = {s for m in wanted for s in self.decoder_spaces.get(m, ())}  # unknown: below
        if any(s not in latent.codes for s in spaces):
            latent = self.complete(latent, generator)  # once: slicing never changes the draws
        rows = latent.n_samples
        if batch.device.type == "cpu":
            rows = max(1, DECODE_ROWS // latent.batch_size)
        parts = []
        for start in range(0, latent.n_samples, rows):
            part = latent.draws(slice(start, start + rows))
            outs = self.decoder_outputs(part, wanted)
            parts.append(sum(self.log_likelihoods(outs, batch, weighted=False).values()))
        return torch.cat(parts)

    # ---- public API -----------------------------------------------------------------------
    def encode(
        self,
        batch: Batch,
        given: Iterable[str] | None = None,
        n_samples: int = 1,
        mean: bool = False,
        generator: torch.Generator | None = None,
        noise: Mapping[str, Noise] | None = None,
    ) -> Latent:
        """Codes in every latent space from the modalities in `given` that each sample has;
        each is [S, B, D]. `noise`: per space, randomness drawn beforehand (`Noise.draw`)."""
        batch = self.clean(batch)
        mask = self.availability(batch, given)
        draw = Draw(n_samples, mean, generator, noise)
        return self.infer(batch, mask, self.unimodal_experts(batch), draw)

    def decode(
        self, latent: Latent | Tensor, modalities: Iterable[str] | None = None
    ) -> dict[str, Distribution]:
        """p(x_m | z) for each requested modality, batch shape [S, B]."""
        outs = self.decoder_outputs(latent, modalities)
        return {m: self.likelihoods[m].distribution(o) for m, o in outs.items()}

    def decode_mean(
        self,
        latent: Latent | Tensor,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Decoder means [S, B, *shape], clamped to each modality's value range."""
        outs = self.decoder_outputs(latent, modalities, generator)
        return {m: self.output_mean(m, o) for m, o in outs.items()}

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
        given = None if given is None else list(given)
        targets = None if targets is None else list(targets)
        reason = self.generation_error(
            self.names if given is None else given, self.generated if targets is None else targets
        )
        if reason is not None:
            raise ValueError(f"targets: {reason}")
        latent = self.encode(batch, given, n_samples, mean=mean_latent, generator=generator)
        return self.decode_mean(latent, targets, generator)

    @property
    def likelihood_error(self) -> str | None:
        """Why log p(x) cannot be estimated for this model; None when it can."""
        if self.deterministic:
            return (
                f"this {self.model_type} model is deterministic (an autoencoder): it defines no "
                "likelihood p(x); score it by reconstruction, coherence or FID instead"
            )
        return None

    def sampling_error(self, sampler: Sampler | None = None) -> str | None:
        """Why unconditional samples cannot be drawn with `sampler` (None: from the priors);
        None when they can."""
        if not self.sampled_spaces:
            return (
                f"this {self.model_type} model has no unconditional prior (its prior needs "
                "inputs); use generate with the modalities it is conditioned on"
            )
        covered = set() if sampler is None else set(sampler.covering(self.sampled_spaces))
        if not self.has_prior and covered != set(self.sampled_spaces):
            return (
                f"this {self.model_type} model has no prior over its latent codes: fit a latent "
                "sampler on them (e.g. gmm) and sample with it"
            )
        return None

    @torch.no_grad()
    def sample(
        self,
        n: int,
        sampler: Sampler | None = None,
        modalities: Iterable[str] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Unconditional samples: decoder means [n, *shape], latents from priors or `sampler`."""
        reason = self.sampling_error(sampler)
        if reason is not None:
            raise ValueError(f"sampler: {reason}")
        latent = self.draw_prior(n, sampler, generator)
        return {m: x[0] for m, x in self.decode_mean(latent, modalities, generator).items()}

    @torch.no_grad()
    def log_likelihood(
        self,
        batch: Batch,
        k: int = 1000,
        max_batch: int = 65536,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Importance-sampled log p(x_observed) [B] with the model's posteriors as proposal.

        log p(x) ≈ logsumexp_k [log p(x, z_k) − log q(z_k | x)] − log K over every latent space.
        Draws come in chunks of K (at most `max_batch` decoder evaluations each) for the same
        samples, and the log-sum-exp is taken over all K at the end, so chunking never mixes
        samples.
        """
        if self.likelihood_error is not None:
            raise ValueError(f"log-likelihood: {self.likelihood_error}")
        batch = self.clean(batch)
        mask = self.availability(batch)
        experts = self.unimodal_experts(batch)
        chunk = max(1, max_batch // batch.size)
        log_w = []
        for start in range(0, k, chunk):
            draw = Draw(min(chunk, k - start), generator=generator)
            log_w.append(self.log_weights(batch, self.infer(batch, mask, experts, draw)))
        return torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)

    @property
    def generated(self) -> list[str]:
        """The modalities the model decodes (every one, except for conditional models)."""
        return [m for m in self.names if m in self.decoders]

    @property
    def required_inputs(self) -> list[str]:
        """Modalities every sample must be given to be encoded (a conditional model's
        conditioning modalities); none for a joint model."""
        return []

    def generation_error(self, given: Iterable[str], targets: Iterable[str]) -> str | None:
        """Why the model cannot generate `targets` from samples given `given`; None when it can
        (a joint model generates any modality from any non-empty subset)."""
        inputs = [m for m in targets if m not in self.generated]
        if inputs:
            return f"{inputs} are inputs of this {self.model_type} model, not generated"
        missing = [m for m in self.required_inputs if m not in set(given)]
        if missing:
            return (
                f"this {self.model_type} model generates {self.generated} from "
                f"{self.required_inputs}; {missing} not given"
            )
        return None

    def decoding_error(self, space: str, targets: Iterable[str]) -> str | None:
        """Why codes of `space` alone cannot be decoded into `targets`, the other spaces their
        decoders read drawn from their priors (`complete`); None when they can."""
        targets = list(targets)
        inputs = [m for m in targets if m not in self.generated]
        if inputs:
            return f"{inputs} are inputs of this {self.model_type} model, not generated"
        for m in targets:
            if self.decoder_context(m):
                return (
                    f"decoding {m!r} needs the {list(self.decoder_context(m))} of this "
                    f"{self.model_type} model's inputs; use generate with them"
                )
            others = [
                s
                for s in self.decoder_spaces[m]
                if s != space and not self.latent_spaces[s].conditional
            ]
            if others and not self.has_prior:
                return (
                    f"decoding {m!r} needs codes of {others} too, and this {self.model_type} "
                    "model has no prior to draw them from"
                )
        return None

    def inference_passes(self, modalities: list[str]) -> int:
        """Model passes one posterior draw may cost when samples are given some of `modalities`:
        1, unless inference iterates (JNF's Monte Carlo). Request costs are multiplied by it."""
        return 1

    def cluster_probabilities(self, latent: Latent) -> Tensor | None:
        """q(cluster | codes) [B, C] averaged over the latent's draws, for models whose prior
        has clusters (the HTTP `encode` route returns it); None for the others."""
        return None

    def kept_dimensions(self) -> list[int] | None:
        """The shared space's dimensions still used at prediction, for models that drop some
        (sparse latents above their threshold); None when every dimension is used."""
        return None

    def describe_latent_spaces(self) -> dict[str, dict[str, Any]]:
        return {name: space.describe() for name, space in self.latent_spaces.items()}

    # ---- persistence (the folder format and transport live in core.persistence / core.hub) --
    def save_pretrained(self, directory: str | Path, training_info: dict | None = None) -> Path:
        """Write config.json, model.safetensors, the card, training.json and the sampler."""
        return pretrained.save_folder(self, directory, training_info)

    @classmethod
    def from_pretrained(
        cls, source: str | Path, revision: str | None = None, **hub_options: Any
    ) -> MultimodalVAE:
        """A local folder (a Path or an explicit path string) or a Hub repo id at `revision`;
        `hub_options`: endpoint, token, cache_dir, offline."""
        model = pretrained.load(source, revision, **hub_options)
        if cls is not MultimodalVAE and not isinstance(model, cls):
            raise TypeError(f"{source}: holds a {model.model_type!r} model, not {cls.model_type!r}")
        return model

    def push_to_hub(self, repo_id: str, **options: Any) -> pretrained.PushResult:
        """Upload this model (and its sampler) to `repo_id` as one commit."""
        return pretrained.push(self, repo_id, **options)
