"""This project's side of bench.compare, run in the project's environment.

    python bench/compare/ours.py '{"task": "quality", "model": "mvae", "seed": 0, ...}'

Builds the model from a config with the networks of protocol.py (MLP [256, 256] encoders and
decoders, latent 16, Bernoulli image, categorical label), trains it with the project's `Trainer`
and prints one JSON object, as reference.py does for MultiVae.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project, for `core`

import torch
from torch import Tensor

from bench.compare import protocol
from core.data import MultimodalDataset
from core.data.batch import Batch
from core.models import MultimodalVAE, build_model
from core.models.cvae import CONDITION
from core.models.fusion import product_of_experts
from core.models.latents import SHARED, Latent, level_space, private_space
from core.training import Callback, Trainer, TrainerConfig

NETWORK = {"kind": "mlp", "hidden": [protocol.HIDDEN, protocol.HIDDEN]}
MODALITIES = [
    {"name": "image", "shape": [1, 8, 8], "kind": "image", "likelihood": {"kind": "bernoulli"}},
    {"name": "label", "shape": [10], "likelihood": {"kind": "categorical"}},
]


def build(kind: str, options: dict[str, Any]) -> MultimodalVAE:
    config = {"model_type": kind, "modalities": MODALITIES, "latent_dim": protocol.LATENT}
    return build_model({**config, "encoder": NETWORK, "decoder": NETWORK, **options})


def dataset(arrays: dict[str, Tensor]) -> MultimodalDataset:
    return MultimodalDataset({m: arrays[m] for m in protocol.SHAPES}, labels=arrays["y"])


def batch(arrays: dict[str, Tensor]) -> Batch:
    return dataset(arrays).batch()


class Space:
    """One latent space's posterior as a protocol proposal."""

    def __init__(self, posterior: Any) -> None:
        self.posterior = posterior

    def sample(self, k: int) -> Tensor:
        return self.posterior.rsample(k)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.posterior.log_prob(z)


class Adapter:
    """The protocol's z is every latent space's code, concatenated in the model's order (the
    shared space first, then each modality's private one, as reference.py lays them out)."""

    def __init__(self, model: MultimodalVAE) -> None:
        self.model = model.eval()
        self.sizes = {space: s.dim for space, s in model.latent_spaces.items()}

    def latent(self, z: Tensor) -> Latent:
        return Latent(dict(zip(self.sizes, z.split(list(self.sizes.values()), -1), strict=True)))

    def proposal(self, data: dict[str, Tensor]) -> protocol.Product:
        posteriors = self.model.encode(batch(data)).posteriors
        parts = [Space(posteriors[space]) for space in self.sizes]
        return protocol.Product(parts, list(self.sizes.values()))

    def log_prior(self, z: Tensor) -> Tensor:
        latent = self.latent(z)
        return sum(self.model.prior(s, latent).log_prob(c) for s, c in latent.codes.items())

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        return self.model.decoder_outputs(self.latent(z))

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor | None:
        if self.model.generation_error([given], [target]) is not None:
            return None  # a direction this model does not generate (DVCCA, DCCAE, CVAE)
        return self.model.generate(batch(data), [given], [target])[target][0]


def normal(q: Any, k: int | None = None) -> torch.distributions.Normal:
    """A posterior's Gaussian as a torch Normal (with k: repeated over K draws first)."""
    loc, scale = q.loc, q.scale
    if k is not None:
        loc, scale = loc.expand(k, *loc.shape), scale.expand(k, *scale.shape)
    return torch.distributions.Normal(loc, scale)


class Hierarchy(Adapter):
    """A model whose latent levels have conditional priors (Nexus, MHVAE): z is every space's
    code in `order`, the order the model's inference draws them, and the proposal that chain
    (`protocol.Chain`): each level's posterior given the codes drawn before it, as the model's
    own `infer` and `log_likelihood` draw them."""

    def __init__(self, model: MultimodalVAE) -> None:
        super().__init__(model)
        if model.model_type == "nexus":  # bottom codes first, then the top one from them
            self.order = [private_space(m) for m in model.names] + [SHARED]
        else:  # MHVAE: from the top level down
            self.order = [level_space(j) for j in range(model.config.n_latent)]
        self.sizes = {space: self.sizes[space] for space in self.order}

    def latent(self, z: Tensor) -> Latent:
        codes = dict(zip(self.order, z.split(list(self.sizes.values()), -1), strict=True))
        return Latent(codes, primary=self.model.primary_space)

    def proposal(self, data: dict[str, Tensor]) -> protocol.Chain:
        model = self.model
        part = model.clean(batch(data))
        mask = model.availability(part)
        experts = model.unimodal_experts(part)
        if model.model_type == "nexus":
            names = model.names

            def bottom(m: str) -> Any:
                return lambda done, k: normal(experts.private[m], k)

            def top(done: list[Tensor], k: int) -> torch.distributions.Normal:
                return normal(model.top_posterior(dict(zip(names, done, strict=True)), mask))

            steps = [bottom(m) for m in names] + [top]
        else:
            shared = experts.shared
            joint = product_of_experts(shared.loc, shared.scale, mask, prior_expert=True)

            def level(j: int) -> Any:
                def step(done: list[Tensor], k: int) -> torch.distributions.Normal:
                    q, _ = model._level_posterior(j, done[j - 1], experts, mask.unsqueeze(0))
                    return normal(q)

                return step

            first = [lambda done, k: normal(joint, k)]
            steps = first + [level(j) for j in range(1, model.config.n_latent)]
        return protocol.Chain(steps, list(self.sizes.values()))


class Conditional(Adapter):
    """CVAE: z is its one code; the proposal q(z | x_main, c), the prior p(z | c), and only the
    main modality decoded, so the protocol's estimator gives log p(x_main | x_conditions)."""

    def proposal(self, data: dict[str, Tensor]) -> protocol.Factorised:
        latent = self.model.encode(batch(data))
        self.condition = latent.context[CONDITION][0]  # [B, F]
        return protocol.Factorised(normal(latent.posteriors[SHARED]))

    def latent(self, z: Tensor) -> Latent:
        context = {CONDITION: self.condition.expand(z.shape[0], *self.condition.shape)}
        return Latent({SHARED: z}, context=context)

    def log_prior(self, z: Tensor) -> Tensor:
        return self.model.prior(SHARED, self.latent(z)).log_prob(z)


def adapter(model: MultimodalVAE) -> Adapter:
    if model.required_inputs:  # generates from given modalities only
        return Conditional(model)
    if model.model_type in ("nexus", "mhvae"):
        return Hierarchy(model)
    return Adapter(model)


def config(spec: dict[str, Any], epochs: int, seed: int) -> TrainerConfig:
    return TrainerConfig(
        epochs=epochs,
        batch_size=spec["batch_size"],
        learning_rate=1e-3,
        seed=seed,
        device="cpu",
        compile=spec.get("compile", False),
    )


def quality(spec: dict[str, Any]) -> dict[str, Any]:
    torch.manual_seed(spec["seed"])
    model = build(spec["model"], spec.get("options", {}))
    train, test = protocol.digits("train"), protocol.digits("test")
    trainer = Trainer(model, dataset(train), None, config(spec, spec["epochs"], spec["seed"]))
    start = time.perf_counter()
    trainer.fit()
    seconds = time.perf_counter() - start
    loss = trainer.evaluate(dataset(test))["loss"]
    scorer = adapter(model)
    torch.manual_seed(10_000 + spec["seed"])
    extra = {}
    with torch.no_grad():
        nll = None  # a deterministic model defines no likelihood, a conditional no joint one
        if isinstance(scorer, Conditional):
            ll = protocol.joint_log_likelihood(scorer, test, k=spec["k"])
            extra["conditional_nll"] = float(-ll.mean())  # −log p(image | label)
        elif not model.deterministic:
            nll = float(-protocol.joint_log_likelihood(scorer, test, k=spec["k"]).mean())
        if model.model_type == "nexus":  # p(z_m | z) at scale 1, as MultiVae's Nexus has it
            scales = model.bottom_scales.clone()
            model.bottom_scales.fill_(1.0)
            torch.manual_seed(10_000 + spec["seed"])  # the same draws as `nll`
            ll = protocol.joint_log_likelihood(scorer, test, k=spec["k"])
            extra["nll_unit_scale"] = float(-ll.mean())
            model.bottom_scales.copy_(scales)
        figures = protocol.coherence(scorer, test, protocol.image_classifier(train))
    return {
        "nll": nll,
        **extra,
        "test_loss": loss,
        **figures,
        "train_seconds": seconds,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


class EpochClock(Callback):
    """Each epoch's seconds and minor page faults (what the speed benchmarks time); each epoch
    passes `gate` (protocol.EpochGate) first."""

    def __init__(self, gate: protocol.EpochGate | None = None) -> None:
        self.seconds: list[float] = []
        self.faults: list[int] = []
        self.gate = gate or protocol.EpochGate({})

    def on_epoch_start(self, state: Any) -> None:
        self.gate.wait()
        self.start = time.perf_counter()
        self.start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def on_epoch_end(self, state: Any) -> None:
        self.seconds.append(time.perf_counter() - self.start)
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - self.start_faults)
        self.gate.report(self.seconds[-1])


MATRIX_PRODUCTS = frozenset(
    {"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::_addmm_activation"}
)


class MatrixProductClock(Callback):
    """Seconds a training step spends in matrix products (the dense layers' arithmetic, the
    same in both libraries), from a torch profile of the epoch `profiled`: the floor of a step
    that runs the same products the same way, whatever else it removes."""

    def __init__(self, profiled: int) -> None:
        self.profiled = profiled
        self.steps = 0
        self.seconds_per_step: float | None = None
        self.profiled_step_seconds: float | None = None  # the whole profiled step, wall clock

    def on_epoch_start(self, state: Any) -> None:
        if state.epoch == self.profiled:
            self.profile = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
            self.profile.__enter__()
            self.start = time.perf_counter()

    def on_step_end(self, state: Any) -> None:
        self.steps += state.epoch == self.profiled

    def on_epoch_end(self, state: Any) -> None:
        if state.epoch == self.profiled:
            self.profiled_step_seconds = (time.perf_counter() - self.start) / self.steps
            self.profile.__exit__(None, None, None)
            self.seconds_per_step = matrix_product_seconds(self.profile) / self.steps


def matrix_product_seconds(profile: torch.profiler.profile) -> float:
    """Self seconds of the matrix-product operators in `profile` (all threads' calls)."""
    events = profile.key_averages()
    return sum(e.self_cpu_time_total for e in events if e.key in MATRIX_PRODUCTS) / 1e6


def speed(spec: dict[str, Any]) -> dict[str, Any]:
    """Samples/s of the median epoch after the first `untimed` (default 1); with
    `matrix_products`, one more epoch (not timed) is profiled for the seconds a step spends in
    matrix products."""
    if spec.get("compile"):  # a cold compile, as a user's first run pays it
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="compare-inductor-")
    torch.manual_seed(0)
    model = build(spec["model"], spec.get("options", {}))
    clock = EpochClock(protocol.EpochGate(spec))
    epochs = spec["epochs"] + bool(spec.get("matrix_products"))
    products = MatrixProductClock(profiled=epochs) if spec.get("matrix_products") else None
    callbacks = [clock] if products is None else [clock, products]
    data = dataset(protocol.synthetic(spec["size"]))
    Trainer(model, data, None, config(spec, epochs, 0), callbacks).fit()
    times = clock.seconds[: spec["epochs"]]
    speed = protocol.steady_samples_per_s(times, spec["size"], spec.get("untimed", 1))
    out = {"epoch_seconds": times, "samples_per_s": speed}
    if products is not None:
        out["matrix_product_seconds_per_step"] = products.seconds_per_step
        out["profiled_step_seconds"] = products.profiled_step_seconds
    return out


def evaluation(spec: dict[str, Any]) -> dict[str, Any]:
    """Seconds of this project's evaluators on the first `n_test` test samples (an untrained
    model: the cost does not depend on the weights): joint NLL with K draws, coherence."""
    from core.metrics.coherence import cross_coherence
    from core.metrics.likelihood import joint_nll

    torch.manual_seed(0)
    model = build(spec["model"], spec.get("options", {})).eval()
    train = protocol.digits("train")
    test = dataset({m: x[: spec["n_test"]] for m, x in protocol.digits("test").items()})
    layer = protocol.classifier_layer(train)
    start = time.perf_counter()
    joint_nll(model, test, k=spec["k"], batch_size=spec["batch_size"])
    nll_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with torch.no_grad():
        cross_coherence(
            model,
            test,
            {"image": lambda x: layer(x.flatten(1))},
            label_modality="label",
            batch_size=spec["batch_size"],
        )
    return {"nll_seconds": nll_seconds, "coherence_seconds": time.perf_counter() - start}


if __name__ == "__main__":
    task = json.loads(sys.argv[1])
    tasks = {"quality": quality, "speed": speed, "evaluation": evaluation}
    print(json.dumps(tasks[task["task"]](task)))
