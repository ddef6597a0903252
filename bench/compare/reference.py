"""MultiVae 1.0.3, run by bench.compare in its own virtual environment (see env.py).

    python bench/compare/reference.py '{"task": "quality", "model": "mvae", "seed": 0, ...}'

Builds the model with the networks of protocol.py as pythae encoder/decoder classes, trains it
with MultiVae's own `BaseTrainer` (its `train_step`, one call per epoch, as `train()` makes it),
and prints one JSON object: the protocol's figures (quality) or epoch times (speed).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from typing import Any

import protocol
import torch
from multivae.data import MultimodalBaseDataset
from multivae.models import (
    CMVAE,
    CRMVAE,
    CVAE,
    DMVAE,
    JMVAE,
    JNF,
    MHVAE,
    MMVAE,
    MVAE,
    MVTCAE,
    TELBO,
    CMVAEConfig,
    CRMVAEConfig,
    CVAEConfig,
    DMVAEConfig,
    JMVAEConfig,
    JNFConfig,
    MHVAEConfig,
    MMVAEConfig,
    MMVAEPlus,
    MMVAEPlusConfig,
    MoPoE,
    MoPoEConfig,
    MVAEConfig,
    MVTCAEConfig,
    Nexus,
    NexusConfig,
    TELBOConfig,
)
from multivae.models.base.base_utils import poe
from multivae.models.nn.base_architectures import BaseConditionalDecoder, BaseJointEncoder
from multivae.trainers import (
    BaseTrainer,
    BaseTrainerConfig,
    MultistageTrainer,
    MultistageTrainerConfig,
)
from pythae.models.base.base_model import BaseDecoder, BaseEncoder
from pythae.models.base.base_utils import ModelOutput
from torch import Tensor, nn

MODELS = {
    "mvae": (MVAE, MVAEConfig),
    "jmvae": (JMVAE, JMVAEConfig),
    "mopoe": (MoPoE, MoPoEConfig),
    "mmvae": (MMVAE, MMVAEConfig),
    "mvtcae": (MVTCAE, MVTCAEConfig),
    "crmvae": (CRMVAE, CRMVAEConfig),
    "telbo": (TELBO, TELBOConfig),
    "jnf": (JNF, JNFConfig),
    "dmvae": (DMVAE, DMVAEConfig),
    "mmvae_plus": (MMVAEPlus, MMVAEPlusConfig),
    "cmvae": (CMVAE, CMVAEConfig),
}
JOINT_ENCODER = {"jmvae", "telbo", "jnf"}  # the joint posterior is a joint encoder's
MULTISTAGE = {"telbo", "jnf"}  # trained by MultiVae's own loop (its stage resets live there)
# models with a private latent per modality, and the config giving it protocol.PRIVATE dimensions
PRIVATE = {
    "dmvae": {"modalities_specific_dim": {m: protocol.PRIVATE for m in protocol.SHAPES}},
    "mmvae_plus": {"modalities_specific_dim": protocol.PRIVATE},
    "cmvae": {"modalities_specific_dim": protocol.PRIVATE},
}
MMVAE_FAMILY = {"mmvae", "mmvae_plus", "cmvae"}  # mixtures of unimodal experts


# this project's models read a Gaussian's scale as exp(0.5 · clamp(raw, -30, 20)) (core/models/
# base.py, `expert_scale`); the networks of Nexus, MHVAE and CVAE below clamp their log-variances
# to the same range (`clamp_log_var`, default true; see build_mhvae)
LOG_VAR_RANGE = (-30.0, 20.0)
Range = tuple[float, float] | None


class Encoder(BaseEncoder):
    """Shared mean and log-variance, then (with `private` > 0) the private latent's: one head,
    as this project's encoders; with `log_var_range`, the shared log-variance clamped to it."""

    def __init__(
        self,
        shape: tuple[int, ...],
        private: int = 0,
        latent: int = protocol.LATENT,
        log_var_range: Range = None,
    ) -> None:
        super().__init__()
        self.latent_dim, self.private, self.range = latent, private, log_var_range
        self.trunk = protocol.trunk(math.prod(shape))
        self.head = nn.Linear(protocol.HIDDEN, 2 * (latent + private))

    def forward(self, x: Tensor) -> ModelOutput:
        d, p = self.latent_dim, self.private
        out = self.head(self.trunk(x.flatten(1)))
        log_var = out[:, d : 2 * d]
        if self.range is not None:
            log_var = log_var.clamp(*self.range)
        fields = {"embedding": out[:, :d], "log_covariance": log_var}
        if p:
            fields["style_embedding"] = out[:, 2 * d : 2 * d + p]
            fields["style_log_covariance"] = out[:, 2 * d + p :]
        return ModelOutput(**fields)


class Decoder(BaseDecoder):
    """Reads [shared, own private] codes (`private` = 0: shared only)."""

    def __init__(
        self, shape: tuple[int, ...], private: int = 0, latent: int = protocol.LATENT
    ) -> None:
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(
            protocol.trunk(latent + private), nn.Linear(protocol.HIDDEN, math.prod(shape))
        )

    def forward(self, z: Tensor) -> ModelOutput:
        out = self.net(z.reshape(-1, z.shape[-1]))
        return ModelOutput(reconstruction=out.reshape(*z.shape[:-1], *self.shape))


# ---- Nexus, MHVAE, CVAE: the networks this project builds from its defaults ------------------
# (core/models/{nexus,mhvae,cvae}.py): Nexus's top_network MLP [512] for the top encoders, the
# joint encoder and the top decoders; MHVAE's feature_dim 128 and block_network MLP [128] for
# every bottom-up, top-down, prior and posterior block (posterior blocks shared by the
# modalities); CVAE's condition_features 64 per modality and posterior_network MLP [512, 512].
NEXUS_BOTTOM = 16  # each modality's bottom latent (our modalities_specific_dim default)
NEXUS_TOP_HIDDEN = [512]
MHVAE_FEATURES = 128
MHVAE_BLOCK_HIDDEN = [128]
CVAE_FEATURES = 64
CVAE_POSTERIOR_HIDDEN = [512, 512]
CVAE_MAIN, CVAE_CONDITIONS = "image", ["label"]  # our CVAE's defaults: the first modality is main


def mlp(inputs: int, hidden: list[int], outputs: int) -> nn.Sequential:
    """Linear + ReLU per hidden width, then a linear output layer (this project's `mlp`)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inputs, width), nn.ReLU()]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(inputs, outputs))


class Gaussian(BaseEncoder):
    """An MLP whose output halves are a Gaussian's mean and log-variance (clamped to
    `log_var_range` where given)."""

    def __init__(self, inputs: int, hidden: list[int], latent: int, log_var_range: Range) -> None:
        super().__init__()
        self.latent_dim, self.range = latent, log_var_range
        self.net = mlp(inputs, hidden, 2 * latent)

    def forward(self, x: Tensor) -> ModelOutput:
        mu, log_var = self.net(x).chunk(2, -1)
        if self.range is not None:
            log_var = log_var.clamp(*self.range)
        return ModelOutput(embedding=mu, log_covariance=log_var)


class Message(BaseEncoder):
    """Nexus's top encoder: a bottom code -> its message (no variance: MultiVae reads only the
    embedding)."""

    def __init__(self, inputs: int, hidden: list[int], outputs: int) -> None:
        super().__init__()
        self.net = mlp(inputs, hidden, outputs)

    def forward(self, x: Tensor) -> ModelOutput:
        return ModelOutput(embedding=self.net(x))


class Vector(BaseDecoder):
    """Nexus's top decoder: the top code -> the mean of a bottom code."""

    def __init__(self, inputs: int, hidden: list[int], outputs: int) -> None:
        super().__init__()
        self.net = mlp(inputs, hidden, outputs)

    def forward(self, z: Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=self.net(z))


class Features(BaseEncoder):
    """The protocol's trunk, then a linear layer to `size` features (no activation): MHVAE's
    first skip, CVAE's per-modality features."""

    def __init__(self, shape: tuple[int, ...], size: int) -> None:
        super().__init__()
        self.net = nn.Sequential(protocol.trunk(math.prod(shape)), nn.Linear(protocol.HIDDEN, size))

    def forward(self, x: Tensor) -> ModelOutput:
        return ModelOutput(embedding=self.net(x.flatten(1)))


class CVAEEncoder(BaseJointEncoder):
    """q(z | x_main, c): the posterior MLP over [features(x_main), features(conditions)]."""

    def __init__(self, features: nn.ModuleDict, log_var_range: Range) -> None:
        super().__init__()
        self.latent_dim, self.features = protocol.LATENT, features
        width = CVAE_FEATURES * (1 + len(CVAE_CONDITIONS))
        self.head = Gaussian(width, CVAE_POSTERIOR_HIDDEN, protocol.LATENT, log_var_range)

    def forward(self, x: dict[str, Tensor]) -> ModelOutput:
        parts = [self.features[m](x[m]).embedding for m in [CVAE_MAIN, *CVAE_CONDITIONS]]
        return self.head(torch.cat(parts, -1))


class CVAEDecoder(BaseConditionalDecoder):
    """p(x_main | z, c) over [z, features(conditions)]; the condition's feature network is the
    encoder's own (one module, as this project's CVAE computes the features once for both)."""

    def __init__(self, features: nn.ModuleDict) -> None:
        super().__init__()
        self.latent_dim, self.features = protocol.LATENT, features
        self.shape = protocol.SHAPES[CVAE_MAIN]
        width = protocol.LATENT + CVAE_FEATURES * len(CVAE_CONDITIONS)
        self.net = nn.Sequential(
            protocol.trunk(width), nn.Linear(protocol.HIDDEN, math.prod(self.shape))
        )

    def forward(self, z: Tensor, cond_mods: dict[str, Tensor]) -> ModelOutput:
        c = [self.features[m](cond_mods[m]).embedding for m in CVAE_CONDITIONS]
        out = self.net(torch.cat([z, *c], -1))
        return ModelOutput(reconstruction=out.reshape(len(z), *self.shape))


def common_config() -> dict[str, Any]:
    return {
        "n_modalities": 2,
        "latent_dim": protocol.LATENT,
        "input_dims": dict(protocol.SHAPES),
        "decoders_dist": {"image": "bernoulli", "label": "categorical"},
    }


def log_var_range(options: dict[str, Any]) -> Range:
    """The reference-only option `clamp_log_var` (taken out of `options`): clamp (default) or
    not the networks' log-variances to LOG_VAR_RANGE."""
    return LOG_VAR_RANGE if options.pop("clamp_log_var", True) else None


def build_nexus(options: dict[str, Any]) -> Any:
    options = dict(options)
    clamp = log_var_range(options)
    bottom = {m: NEXUS_BOTTOM for m in protocol.SHAPES}
    config = NexusConfig(**common_config(), **{"modalities_specific_dim": bottom, **options})
    dims, top, msg = config.modalities_specific_dim, NEXUS_TOP_HIDDEN, config.msg_dim
    return Nexus(
        config,
        encoders={m: Encoder(s, 0, dims[m], clamp) for m, s in protocol.SHAPES.items()},
        decoders={m: Decoder(s, latent=dims[m]) for m, s in protocol.SHAPES.items()},
        top_encoders={m: Message(dims[m], top, msg) for m in protocol.SHAPES},
        joint_encoder=Gaussian(msg, top, protocol.LATENT, clamp),
        top_decoders={m: Vector(protocol.LATENT, top, dims[m]) for m in protocol.SHAPES},
    )


def build_mhvae(options: dict[str, Any]) -> Any:
    """MHVAE with every level of LATENT dimensions. MultiVae has no KL warmup: the option
    `warmup` is applied by `start_epoch`, which sets the model's β before each epoch. Without
    the log-variance clamp (`clamp_log_var: false`) its experts' log-variances grow past 88,
    where exp overflows float32, and training stops on a NaN loss in 2 of 3 seeds here."""
    options = dict(options)
    warmup = options.pop("warmup", 0)
    clamp = log_var_range(options)
    config = MHVAEConfig(**common_config(), **options)
    f, hidden, d, levels = MHVAE_FEATURES, MHVAE_BLOCK_HIDDEN, protocol.LATENT, config.n_latent
    bottom_up = {
        m: [mlp(f, hidden, f) for _ in range(levels - 2)] + [Gaussian(f, hidden, d, clamp)]
        for m in protocol.SHAPES
    }
    model = MHVAE(
        config,
        encoders={m: Features(s, f) for m, s in protocol.SHAPES.items()},
        decoders={m: Decoder(s) for m, s in protocol.SHAPES.items()},
        bottom_up_blocks=bottom_up,
        top_down_blocks=[mlp(d, hidden, f) for _ in range(levels - 1)],
        posterior_blocks=[Gaussian(2 * f, hidden, d, clamp) for _ in range(levels - 1)],
        prior_blocks=[Gaussian(f, hidden, d, clamp) for _ in range(levels - 1)],
    )
    model.bench_warmup, model.bench_beta = warmup, config.beta
    return model


def build_cvae(options: dict[str, Any]) -> Any:
    options = dict(options)
    clamp = log_var_range(options)
    config = CVAEConfig(
        input_dims=dict(protocol.SHAPES),
        latent_dim=protocol.LATENT,
        main_modality=CVAE_MAIN,
        conditioning_modalities=list(CVAE_CONDITIONS),
        decoder_dist="bernoulli",
        **options,
    )
    features = nn.ModuleDict({m: Features(s, CVAE_FEATURES) for m, s in protocol.SHAPES.items()})
    return CVAE(config, encoder=CVAEEncoder(features, clamp), decoder=CVAEDecoder(features))


BUILDERS = {"nexus": build_nexus, "mhvae": build_mhvae, "cvae": build_cvae}


def start_epoch(model: Any, epoch: int) -> None:
    """What runs before each training epoch: MHVAE's KL warmup, β · min(1, epoch / warmup),
    the schedule of this project's `warmup` option."""
    warmup = getattr(model, "bench_warmup", 0)
    if warmup:
        model.beta = model.bench_beta * min(1.0, epoch / warmup)


def build(kind: str, options: dict[str, Any]) -> Any:
    if kind in BUILDERS:
        return BUILDERS[kind](options)
    cls, config_cls = MODELS[kind]
    config = config_cls(
        n_modalities=2,
        latent_dim=protocol.LATENT,
        input_dims=dict(protocol.SHAPES),
        decoders_dist={"image": "bernoulli", "label": "categorical"},
        **PRIVATE.get(kind, {}),
        **options,
    )
    private = protocol.PRIVATE if kind in PRIVATE else 0
    encoders = {m: Encoder(s, private) for m, s in protocol.SHAPES.items()}
    decoders = {m: Decoder(s, private) for m, s in protocol.SHAPES.items()}
    return cls(config, encoders=encoders, decoders=decoders)


def dataset(arrays: dict[str, Tensor]) -> MultimodalBaseDataset:
    return MultimodalBaseDataset(data={m: arrays[m] for m in protocol.SHAPES}, labels=arrays["y"])


def trainer(
    model: Any, data: dict[str, Tensor], batch_size: int, seed: int, out: str, epochs: int = 10**6
) -> Any:
    """MultiVae's trainer for the model. A multistage model keeps its best model on the training
    loss: without an eval set MultiVae would otherwise restart stage 2 from the untrained model
    (its `_best_model` is only updated from eval losses)."""
    kw = {"output_dir": out, "per_device_train_batch_size": batch_size, "learning_rate": 1e-3,
          "num_epochs": epochs, "seed": seed, "no_cuda": True}  # fmt: skip
    if model.model_name.lower() in MULTISTAGE:
        config = MultistageTrainerConfig(**kw, keep_best_on_train=True)
        return MultistageTrainer(model, dataset(data), training_config=config)
    return BaseTrainer(model, dataset(data), training_config=BaseTrainerConfig(**kw))


# ---- the protocol's view of a MultiVae model -------------------------------------------------
def gaussian(mu: Tensor, log_var: Tensor) -> protocol.Factorised:
    return protocol.Factorised(torch.distributions.Normal(mu, torch.exp(0.5 * log_var)))


class Adapter:
    """z is the shared code, then (models in PRIVATE) each modality's private code in `SHAPES`
    order, as bench/compare/ours.py lays out this project's latent spaces."""

    def __init__(self, kind: str, model: Any) -> None:
        self.kind, self.model = kind, model.eval()
        self.private = protocol.PRIVATE if kind in PRIVATE else 0

    def proposal(self, data: dict[str, Tensor]) -> Any:
        m, inputs = self.model, dataset(data)
        if self.kind == "mvae":
            return gaussian(*m.compute_mu_log_var_subset(inputs, list(protocol.SHAPES)))
        if self.kind == "mvtcae":
            return gaussian(*m._inference(inputs)["joint"])
        if self.kind in JOINT_ENCODER:
            out = m.joint_encoder(inputs.data)
            return gaussian(out.embedding, out.log_covariance)
        if self.kind == "crmvae":
            joint = m._infer_all_latent_parameters(inputs)["joint"]
            return gaussian(joint.embedding, joint.log_covariance)
        if self.kind == "mopoe":
            latents = m.inference(inputs)
            scale = torch.exp(0.5 * latents["logvars"])
            return protocol.UniformMixture(torch.distributions.Normal(latents["mus"], scale))
        if self.kind == "dmvae":  # PoE with the prior expert; private posteriors Gaussian
            mu, log_var, _, private = m._infer_latent_parameters(inputs)
            parts = [gaussian(mu, log_var)] + [gaussian(*private[k]) for k in protocol.SHAPES]
            return protocol.Product(parts, self.block_sizes())
        outs = [m.encoders[k](inputs.data[k]) for k in protocol.SHAPES]  # the MMVAE family
        std = m.log_var_to_std if self.kind == "mmvae" else m._log_var_to_std
        dist = m.latent_dist if self.kind == "cmvae" else m.post_dist
        loc = torch.stack([o.embedding for o in outs])
        scale = torch.stack([std(o.log_covariance) for o in outs])
        shared = protocol.UniformMixture(dist(loc, scale))
        if self.kind == "mmvae":
            return shared
        private = [
            protocol.Factorised(dist(o.style_embedding, std(o.style_log_covariance)))
            for o in outs
        ]
        return protocol.Product([shared, *private], self.block_sizes())

    def block_sizes(self) -> list[int]:
        return [protocol.LATENT] + ([self.private] * len(protocol.SHAPES) if self.private else [])

    def log_prior(self, z: Tensor) -> Tensor:
        if self.kind == "cmvae":
            return self.cluster_log_prior(z)
        if self.kind not in MMVAE_FAMILY:
            return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)
        # MMVAE(+)'s p over [u, w]: its first LATENT dimensions score u, the rest each w_m
        mean, std = self.model.pz_params
        d = protocol.LATENT
        shared = self.model.prior_dist(mean[..., :d], std[..., :d])
        u, *private = z.split(self.block_sizes(), -1)
        total = shared.log_prob(u).sum(-1)
        for w in private:
            total = total + self.model.prior_dist(mean[..., d:], std[..., d:]).log_prob(w).sum(-1)
        return total

    def cluster_log_prior(self, z: Tensor) -> Tensor:
        """CMVAE's p(u) = Σ_c p(c) p(u | c) over its clusters, times each p(w_m)."""
        m = self.model
        u, *private = z.split(self.block_sizes(), -1)
        per_cluster = torch.stack([
            m.latent_dist(mean, m._log_var_to_std(log_var)).log_prob(u).sum(-1)
            for mean, log_var in zip(m.mean_clusters, m.logvar_clusters, strict=True)
        ])  # [C, K, B]
        log_pc = torch.log_softmax(m._pc_params, -1).view(-1, 1, 1)
        total = torch.logsumexp(log_pc + per_cluster, 0)
        p_w = m.latent_dist(m.w_mean_prior, m._log_var_to_std(m.w_logvar_prior))
        for w in private:
            total = total + p_w.log_prob(w).sum(-1)
        return total

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        if not self.private:
            return {k: self.model.decoders[k](z).reconstruction for k in protocol.SHAPES}
        shared, *private = z.split(self.block_sizes(), -1)
        return {
            k: self.model.decoders[k](torch.cat([shared, w], -1)).reconstruction
            for k, w in zip(protocol.SHAPES, private, strict=True)
        }

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor:
        out = self.model.predict(dataset(data), cond_mod=[given], gen_mod=[target])[target]
        return torch.sigmoid(out) if target == "image" else out


def gaussian_k(mu: Tensor, log_var: Tensor, k: int) -> torch.distributions.Normal:
    """N(mu, exp(log_var)) [B, D] repeated over K draws: batch shape [K, B, D]."""
    std = torch.exp(0.5 * log_var)
    return torch.distributions.Normal(mu.expand(k, *mu.shape), std.expand(k, *std.shape))


def normal(out: ModelOutput) -> torch.distributions.Normal:
    return torch.distributions.Normal(out.embedding, torch.exp(0.5 * out.log_covariance))


class NexusAdapter(Adapter):
    """z = [bottom code of each modality in `SHAPES` order, top code], drawn as Nexus infers:
    z_m ~ q(z_m | x_m), then z ~ q(z | mean of the messages of the z_m). The generative model:
    p(z) = N(0, I), p(z_m | z) = N(top_decoder_m(z), 1) (the scale MultiVae's training loss
    gives it; it keeps no other), p(x_m | z_m)."""

    def __init__(self, kind: str, model: Any) -> None:
        super().__init__(kind, model)
        self.names = list(protocol.SHAPES)
        self.sizes = [model.model_config.modalities_specific_dim[m] for m in self.names]
        self.sizes.append(protocol.LATENT)

    def proposal(self, data: dict[str, Tensor]) -> protocol.Chain:
        m = self.model
        outs = {k: m.encoders[k](data[k]) for k in self.names}

        def bottom(k: str) -> Any:
            return lambda done, n: gaussian_k(outs[k].embedding, outs[k].log_covariance, n)

        def top(done: list[Tensor], n: int) -> torch.distributions.Normal:
            msgs = [m.top_encoders[k](z).embedding for k, z in zip(self.names, done, strict=True)]
            return normal(m.joint_encoder(torch.stack(msgs).mean(0)))

        return protocol.Chain([bottom(k) for k in self.names] + [top], self.sizes)

    def split(self, z: Tensor) -> tuple[list[Tensor], Tensor]:
        *bottom, top = z.split(self.sizes, -1)
        return bottom, top

    def log_prior(self, z: Tensor) -> Tensor:
        bottom, top = self.split(z)
        total = torch.distributions.Normal(0.0, 1.0).log_prob(top).sum(-1)
        for k, code in zip(self.names, bottom, strict=True):
            mean = self.model.top_decoders[k](top).reconstruction
            total = total + torch.distributions.Normal(mean, 1.0).log_prob(code).sum(-1)
        return total

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        bottom, _ = self.split(z)
        return {
            k: self.model.decoders[k](code).reconstruction
            for k, code in zip(self.names, bottom, strict=True)
        }


class MHVAEAdapter(Adapter):
    """z = [z_L, ..., z_1] (top level first), drawn as MHVAE infers: z_L ~ the PoE of the prior
    and the modalities' top experts, then each z_l ~ the PoE of p(z_l | z_{l+1}) and the
    posterior blocks of the modalities given [h, skip]. The prior p(z_L) Π_l p(z_l | z_{l+1});
    the decoders read z_1."""

    def __init__(self, kind: str, model: Any) -> None:
        super().__init__(kind, model)
        self.levels = model.n_latent
        self.sizes = [protocol.LATENT] * self.levels

    def proposal(self, data: dict[str, Tensor]) -> protocol.Chain:
        m = self.model
        tops, skips = m.modality_encode({k: data[k] for k in protocol.SHAPES})
        mus = [o.embedding for o in tops.values()]
        log_vars = [o.log_covariance for o in tops.values()]
        mu, log_var = poe(
            torch.stack([*mus, torch.zeros_like(mus[0])]),
            torch.stack([*log_vars, torch.zeros_like(log_vars[0])]),
        )

        def level(i: int) -> Any:  # MultiVae's level i (1 = the bottom) from z_{i+1}
            def step(done: list[Tensor], n: int) -> torch.distributions.Normal:
                h = m.top_down_blocks[i - 1](done[-1])
                prior = m.prior_blocks[i - 1](h)
                experts = [
                    m._get_posterior_block(k, i - 1)(
                        torch.cat([h, d[i - 1].expand(*h.shape[:-1], -1)], -1)
                    )
                    for k, d in skips.items()
                ]
                mu, log_var = poe(
                    torch.stack([*(e.embedding for e in experts), prior.embedding]),
                    torch.stack([*(e.log_covariance for e in experts), prior.log_covariance]),
                )
                return torch.distributions.Normal(mu, torch.exp(0.5 * log_var))

            return step

        steps = [lambda done, n: gaussian_k(mu, log_var, n)]
        steps += [level(i) for i in range(self.levels - 1, 0, -1)]
        return protocol.Chain(steps, self.sizes)

    def log_prior(self, z: Tensor) -> Tensor:
        codes = z.split(self.sizes, -1)
        total = torch.distributions.Normal(0.0, 1.0).log_prob(codes[0]).sum(-1)
        for j in range(1, self.levels):
            i = self.levels - j  # MultiVae's index of the level codes[j] holds
            prior = self.model.prior_blocks[i - 1](self.model.top_down_blocks[i - 1](codes[j - 1]))
            total = total + normal(prior).log_prob(codes[j]).sum(-1)
        return total

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        bottom = z.split(self.sizes, -1)[-1]
        return {k: self.model.decoders[k](bottom).reconstruction for k in protocol.SHAPES}


class CVAEAdapter(Adapter):
    """CVAE: q(z | x_main, c) from its joint encoder, p(z | c) = N(0, I) (no prior network,
    both libraries' default), only the main modality decoded: the protocol's estimator then
    gives log p(image | label). It generates images from labels only."""

    conditional = True

    def proposal(self, data: dict[str, Tensor]) -> protocol.Factorised:
        self.condition = {m: data[m] for m in CVAE_CONDITIONS}
        out = self.model.encoder({m: data[m] for m in protocol.SHAPES})
        return gaussian(out.embedding, out.log_covariance)

    def log_prior(self, z: Tensor) -> Tensor:
        return torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1)

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        k, b = z.shape[:2]
        cond = {m: x.expand(k, *x.shape).flatten(0, 1) for m, x in self.condition.items()}
        out = self.model.decoder(z.flatten(0, 1), cond).reconstruction
        return {CVAE_MAIN: out.reshape(k, b, *out.shape[1:])}

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor | None:
        if [given] != CVAE_CONDITIONS or target != CVAE_MAIN:
            return None  # it generates the main modality from the conditioning ones only
        out = self.model.predict(dataset(data), cond_mod=[given])[target]
        return torch.sigmoid(out)


ADAPTERS = {"nexus": NexusAdapter, "mhvae": MHVAEAdapter, "cvae": CVAEAdapter}


# ---- tasks -----------------------------------------------------------------------------------
def quality(spec: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(spec["seed"])
    model = build(spec["model"], spec.get("options", {}))
    train, test = protocol.digits("train"), protocol.digits("test")
    with tempfile.TemporaryDirectory() as out:
        run = trainer(model, train, spec["batch_size"], spec["seed"], out, spec["epochs"])
        start = time.perf_counter()
        if spec["model"] in MULTISTAGE:
            run.train()  # its loop resets the optimizer and model between stages
            model = run._best_model
        else:
            for epoch in range(1, spec["epochs"] + 1):
                start_epoch(model, epoch)
                try:
                    run.train_step(epoch)
                except ArithmeticError as error:  # MultiVae stops on a NaN training loss
                    return failed(model, f"{error} (epoch {epoch})")
        seconds = time.perf_counter() - start
    model.eval()
    out = model(dataset(test), epoch=spec["epochs"])  # with gradients: MMVAE's DReG hooks them
    # the test set's loss per sample: `loss_sum` over the samples where the model gives it,
    # otherwise `loss`, the batch mean (DMVAE, CVAE)
    loss = float(out["loss_sum"]) / len(test["y"]) if "loss_sum" in out else float(out.loss)
    adapter = ADAPTERS.get(spec["model"], Adapter)(spec["model"], model)
    torch.manual_seed(10_000 + spec["seed"])
    ll = protocol.joint_log_likelihood(adapter, test, k=spec["k"])
    figures = protocol.coherence(adapter, test, protocol.image_classifier(train))
    if getattr(adapter, "conditional", False):  # no joint likelihood: log p(image | label)
        scores = {"nll": None, "conditional_nll": float(-ll.mean())}
    else:
        scores = {"nll": float(-ll.mean())}
    return {
        **scores,
        "test_loss": loss,
        **figures,
        "train_seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def failed(model: Any, error: str) -> dict[str, Any]:
    """The result of a model that could not be trained: no figures, the reason."""
    figures = dict.fromkeys(["nll", "test_loss", "image_to_label", "label_to_image"])
    return {**figures, "error": error, "parameters": sum(p.numel() for p in model.parameters())}


def speed(spec: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(spec["model"], spec.get("options", {}))
    data = protocol.synthetic(spec["size"])
    with tempfile.TemporaryDirectory() as out:
        run = trainer(model, data, spec["batch_size"], 0, out)
        times, gate = [], protocol.EpochGate(spec)
        for epoch in range(1, spec["epochs"] + 1):
            start_epoch(model, epoch)
            gate.wait()
            start = time.perf_counter()
            run.train_step(epoch)
            times.append(time.perf_counter() - start)
            gate.report(times[-1])
    speed = protocol.steady_samples_per_s(times, spec["size"], spec.get("untimed", 1))
    return {"epoch_seconds": times, "samples_per_s": speed}


class Classifier(nn.Module):
    """What MultiVae's CoherenceEvaluator calls: a batch of one modality -> class scores."""

    def __init__(self, layer: nn.Module | None) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, x: Tensor) -> Tensor:
        return x if self.layer is None else self.layer(x.flatten(1))


def evaluation(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds of MultiVae's own evaluators on the first `n_test` test samples (an untrained
    model): joint NLL (LikelihoodsEvaluator, K draws), coherences (CoherenceEvaluator)."""
    from multivae.metrics import (
        CoherenceEvaluator,
        CoherenceEvaluatorConfig,
        LikelihoodsEvaluator,
        LikelihoodsEvaluatorConfig,
    )

    torch.manual_seed(0)
    model = build(spec["model"], spec.get("options", {})).eval()
    train = protocol.digits("train")
    test = dataset({m: x[: spec["n_test"]] for m, x in protocol.digits("test").items()})
    config = LikelihoodsEvaluatorConfig(batch_size=spec["batch_size"], num_samples=spec["k"])
    start = time.perf_counter()
    LikelihoodsEvaluator(model, test, eval_config=config).joint_nll()
    nll_seconds = time.perf_counter() - start
    classifiers = {"image": Classifier(protocol.classifier_layer(train)), "label": Classifier(None)}
    config = CoherenceEvaluatorConfig(batch_size=spec["batch_size"], num_classes=10)
    start = time.perf_counter()
    CoherenceEvaluator(model, classifiers, test, eval_config=config).cross_coherences()
    return {"nll_seconds": nll_seconds, "coherence_seconds": time.perf_counter() - start}


if __name__ == "__main__":
    torch.distributions.Distribution.set_default_validate_args(False)  # grey pixels, Bernoulli
    protocol.flush_denormals_if_asked()
    task = json.loads(sys.argv[1])
    tasks = {"quality": quality, "speed": speed, "evaluation": evaluation}
    print(json.dumps(tasks[task["task"]](task)))
