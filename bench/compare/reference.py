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
    DMVAE,
    JMVAE,
    JNF,
    MMVAE,
    MVAE,
    MVTCAE,
    TELBO,
    CMVAEConfig,
    CRMVAEConfig,
    DMVAEConfig,
    JMVAEConfig,
    JNFConfig,
    MMVAEConfig,
    MMVAEPlus,
    MMVAEPlusConfig,
    MoPoE,
    MoPoEConfig,
    MVAEConfig,
    MVTCAEConfig,
    TELBOConfig,
)
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


class Encoder(BaseEncoder):
    """Shared mean and log-variance, then (with `private` > 0) the private latent's: one head,
    as this project's encoders."""

    def __init__(self, shape: tuple[int, ...], private: int = 0) -> None:
        super().__init__()
        self.latent_dim, self.private = protocol.LATENT, private
        self.trunk = protocol.trunk(math.prod(shape))
        self.head = nn.Linear(protocol.HIDDEN, 2 * (protocol.LATENT + private))

    def forward(self, x: Tensor) -> ModelOutput:
        d, p = protocol.LATENT, self.private
        out = self.head(self.trunk(x.flatten(1)))
        fields = {"embedding": out[:, :d], "log_covariance": out[:, d : 2 * d]}
        if p:
            fields["style_embedding"] = out[:, 2 * d : 2 * d + p]
            fields["style_log_covariance"] = out[:, 2 * d + p :]
        return ModelOutput(**fields)


class Decoder(BaseDecoder):
    """Reads [shared, own private] codes (`private` = 0: shared only)."""

    def __init__(self, shape: tuple[int, ...], private: int = 0) -> None:
        super().__init__()
        self.shape = shape
        self.net = nn.Sequential(
            protocol.trunk(protocol.LATENT + private), nn.Linear(protocol.HIDDEN, math.prod(shape))
        )

    def forward(self, z: Tensor) -> ModelOutput:
        out = self.net(z.reshape(-1, z.shape[-1]))
        return ModelOutput(reconstruction=out.reshape(*z.shape[:-1], *self.shape))


def build(kind: str, options: dict[str, Any]) -> Any:
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
                run.train_step(epoch)
        seconds = time.perf_counter() - start
    model.eval()
    out = model(dataset(test), epoch=spec["epochs"])  # with gradients: MMVAE's DReG hooks them
    loss = float(getattr(out, "loss_sum", out.loss)) / len(test["y"])
    adapter = Adapter(spec["model"], model)
    torch.manual_seed(10_000 + spec["seed"])
    ll = protocol.joint_log_likelihood(adapter, test, k=spec["k"])
    figures = protocol.coherence(adapter, test, protocol.image_classifier(train))
    return {
        "nll": float(-ll.mean()),
        "test_loss": loss,
        **figures,
        "train_seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def speed(spec: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(0)
    model = build(spec["model"], spec.get("options", {}))
    data = protocol.synthetic(spec["size"])
    with tempfile.TemporaryDirectory() as out:
        run = trainer(model, data, spec["batch_size"], 0, out)
        times = []
        for epoch in range(1, spec["epochs"] + 1):
            start = time.perf_counter()
            run.train_step(epoch)
            times.append(time.perf_counter() - start)
    timed = sorted(times[1:] or times)  # the first epoch warms up
    return {"epoch_seconds": times, "samples_per_s": spec["size"] / timed[len(timed) // 2]}


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
    task = json.loads(sys.argv[1])
    tasks = {"quality": quality, "speed": speed, "evaluation": evaluation}
    print(json.dumps(tasks[task["task"]](task)))
