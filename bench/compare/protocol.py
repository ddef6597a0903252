"""What both libraries are measured with, in one file that imports only torch, numpy and
scikit-learn, so the reference environment (MultiVae) and this project's load the same code.

- data: scikit-learn's digits, image [1, 8, 8] in [0, 1] and a one-hot label, split as this
  project's built-in `digits` (80/20, stratified, seed 0); a synthetic 60k set for speed;
- timing: a speed run's samples/s over its epochs after the warm-up ones (`steady_samples_per_s`),
  and the gate through which the driver alternates the libraries epoch by epoch (`EpochGate`);
- networks: per modality an MLP trunk 2 x 256 ReLU, latent 16 (encoders give mean and
  log-variance, decoders Bernoulli logits for the image and categorical logits for the label);
  models with private latents add `PRIVATE` dimensions per modality (encoders give their
  parameters too, decoders read [shared, own private]);
- the joint NLL: one importance-sampling estimator for every model of both libraries, given an
  adapter with the model's proposal q(z | x), prior and decoders; with private latents z is
  [shared, private of each modality in `SHAPES` order] and the proposal a `Product`; with a
  hierarchy of latents (Nexus, MHVAE) z is every level's code and the proposal a `Chain`,
  the model's own inference chain; a conditional model (CVAE) decodes its main modality only,
  which makes the same estimator the conditional log p(x_main | x_conditions);
- coherence: image -> label read off the generated label, label -> image classified by a
  logistic regression trained on the real training images.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

LATENT = 16
PRIVATE = 2  # each modality's private latent, in models that have them (both libraries' default)
HIDDEN = 256
SHAPES = {"image": (1, 8, 8), "label": (10,)}


# ---- data ----------------------------------------------------------------------------------
def digits(split: str) -> dict[str, Tensor]:
    """`image` [N, 1, 8, 8] in [0, 1], `label` one-hot [N, 10], `y` [N] for 'train' / 'test'."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    raw = load_digits()
    index = np.arange(len(raw.target))
    train, test = train_test_split(index, test_size=0.2, random_state=0, stratify=raw.target)
    rows = np.sort(train if split == "train" else test)
    y = torch.as_tensor(raw.target[rows], dtype=torch.long)
    image = torch.as_tensor(raw.images[rows] / 16.0, dtype=torch.float32).unsqueeze(1)
    return {"image": image, "label": nn.functional.one_hot(y, 10).float(), "y": y}


def synthetic(n: int = 60_000, seed: int = 0) -> dict[str, Tensor]:
    """Digits-shaped random data for throughput. Speed depends on the values only through
    denormal floats, which appear in the optimizer's moments after ~800 steps on any data
    (`bench.compare --speed-warm-steps`)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(10, (n,), generator=g)
    image = torch.rand(n, 1, 8, 8, generator=g)
    return {"image": image, "label": nn.functional.one_hot(y, 10).float(), "y": y}


# ---- timing --------------------------------------------------------------------------------
FLUSH_DENORMALS = "BENCH_FLUSH_DENORMALS"  # "1" in a reference's environment (--reference-env)


def flush_denormals_if_asked() -> None:
    """With BENCH_FLUSH_DENORMALS=1, compute denormal floats as zeros, as this project's Trainer
    does on the CPU by default. Call it before any parallel work: torch's worker threads,
    started then, inherit the mode."""
    if os.environ.get(FLUSH_DENORMALS) == "1":
        torch.set_flush_denormal(True)


def steady_samples_per_s(epoch_seconds: list[float], size: int, untimed: int = 1) -> float:
    """A speed run's figure: `size` samples over the median epoch after the first `untimed`
    (which warm up: the first epoch, and where a later stage is timed, that stage's first
    epoch too, with its compile and fresh optimizer). The upper median of an even count."""
    timed = sorted(epoch_seconds[untimed:] or epoch_seconds)
    return size / timed[len(timed) // 2]


def warm_epochs(warm_steps: int, size: int, batch_size: int) -> int:
    """The epochs of `size` samples a run leaves untimed so that `warm_steps` optimizer steps
    come before the timed ones (at least one: the first epoch warms up)."""
    steps = -(-size // batch_size)
    return max(1, -(-warm_steps // steps))


WAITING, EPOCH = "@@waiting", "@@epoch"  # the gate's lines on stdout


class EpochGate:
    """Epoch by epoch alternation of the libraries' speed runs (bench.compare's driver). With
    `interleaved` in the task, each epoch says it is waiting, starts when the driver writes a
    line to stdin, and reports its seconds, so only one library trains at a time and adjacent
    epochs of the libraries share the machine's load. Without it, a no-op."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.on = bool(spec.get("interleaved"))

    def wait(self) -> None:
        if self.on:
            print(WAITING, flush=True)
            sys.stdin.readline()

    def report(self, seconds: float) -> None:
        if self.on:
            print(f"{EPOCH} {seconds!r}", flush=True)


# ---- networks ------------------------------------------------------------------------------
def trunk(inputs: int) -> nn.Sequential:
    """The hidden layers every encoder and decoder shares: 2 x 256 with ReLU."""
    return nn.Sequential(nn.Linear(inputs, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN), nn.ReLU())


def log_likelihood(outputs: dict[str, Tensor], data: dict[str, Tensor]) -> Tensor:
    """Σ_m log p(x_m | z) [K, B] over the decoded modalities, from decoder outputs
    [K, B, *shape]: Bernoulli logits for the image (grey targets allowed), categorical logits for
    the label. A conditional model decodes its main modality only: log p(x_main | z, c)."""
    total = torch.zeros(())
    if "image" in outputs:
        image = outputs["image"]
        x = data["image"].expand_as(image)
        bce = nn.functional.binary_cross_entropy_with_logits(image, x, reduction="none")
        total = total - bce.flatten(2).sum(-1)
    if "label" in outputs:
        total = total + (data["label"] * torch.log_softmax(outputs["label"], -1)).sum(-1)
    return total


# ---- the joint NLL -------------------------------------------------------------------------
class Proposal(Protocol):
    def sample(self, k: int) -> Tensor: ...  # [K, B, D]

    def log_prob(self, z: Tensor) -> Tensor: ...  # [K, B]


class Factorised:
    """A proposal with independent dimensions: a torch distribution of batch shape [B, D]."""

    def __init__(self, q: torch.distributions.Distribution) -> None:
        self.q = q

    def sample(self, k: int) -> Tensor:
        return self.q.sample((k,))

    def log_prob(self, z: Tensor) -> Tensor:
        return self.q.log_prob(z).sum(-1)


class UniformMixture:
    """Uniform mixture of components [C, B, D]: a draw picks its component per sample."""

    def __init__(self, components: torch.distributions.Distribution) -> None:
        self.c = components

    def sample(self, k: int) -> Tensor:
        draws = self.c.sample((k,))  # [K, C, B, D]
        pick = torch.randint(draws.shape[1], (k, draws.shape[2]))
        return draws[torch.arange(k)[:, None], pick, torch.arange(draws.shape[2])[None]]

    def log_prob(self, z: Tensor) -> Tensor:
        per = self.c.log_prob(z.unsqueeze(1)).sum(-1)  # [K, C, B]
        return torch.logsumexp(per, 1) - math.log(per.shape[1])


class Product:
    """Independent proposals over consecutive blocks of z (e.g. shared, then each modality's
    private latent): a draw concatenates the blocks' draws, its log-density is their sum."""

    def __init__(self, parts: list[Proposal], sizes: list[int]) -> None:
        self.parts, self.sizes = parts, sizes

    def sample(self, k: int) -> Tensor:
        return torch.cat([part.sample(k) for part in self.parts], -1)

    def log_prob(self, z: Tensor) -> Tensor:
        blocks = z.split(self.sizes, -1)
        return sum(part.log_prob(b) for part, b in zip(self.parts, blocks, strict=True))


class Chain:
    """A hierarchical proposal, drawn block by block: `steps[i](blocks, k)` is the distribution
    of block i, a torch distribution of batch shape [K, B, D_i] with independent dimensions,
    given the blocks drawn before it (a list of [K, B, D_j], j < i); z is the blocks
    concatenated in that order and log q(z) = Σ_i log q_i(block_i | blocks before it)."""

    def __init__(
        self,
        steps: list[Callable[[list[Tensor], int], torch.distributions.Distribution]],
        sizes: list[int],
    ) -> None:
        self.steps, self.sizes = steps, sizes

    def sample(self, k: int) -> Tensor:
        blocks: list[Tensor] = []
        for step in self.steps:
            blocks.append(step(blocks, k).sample())
        return torch.cat(blocks, -1)

    def log_prob(self, z: Tensor) -> Tensor:
        blocks = list(z.split(self.sizes, -1))
        return sum(
            step(blocks[:i], z.shape[0]).log_prob(blocks[i]).sum(-1)
            for i, step in enumerate(self.steps)
        )


class Adapter(Protocol):
    """How the protocol reaches a model of either library."""

    def proposal(self, data: dict[str, Tensor]) -> Proposal: ...

    def log_prior(self, z: Tensor) -> Tensor: ...  # [K, B]

    def decode(self, z: Tensor) -> dict[str, Tensor]: ...  # logits [K, B, *shape]

    def generate(self, data: dict[str, Tensor], given: str, target: str) -> Tensor | None: ...


@torch.no_grad()
def joint_log_likelihood(
    adapter: Adapter, data: dict[str, Tensor], k: int = 1000, batch: int = 64, chunk: int = 250
) -> Tensor:
    """log p(x) [N] ≈ logsumexp_k [log p(x | z_k) + log p(z_k) − log q(z_k | x)] − log K with
    z_k ~ q(z | x), the model's joint posterior; chunks of K draws are joined before the
    log-sum-exp, which is per sample."""
    out = []
    n = len(data["y"])
    for start in range(0, n, batch):
        part = {m: x[start : start + batch] for m, x in data.items()}
        q = adapter.proposal(part)
        weights = []
        for done in range(0, k, chunk):
            z = q.sample(min(chunk, k - done))
            w = log_likelihood(adapter.decode(z), part) + adapter.log_prior(z) - q.log_prob(z)
            weights.append(w)
        out.append(torch.logsumexp(torch.cat(weights), 0) - math.log(k))
    return torch.cat(out)


# ---- coherence -----------------------------------------------------------------------------
def classifier_layer(train: dict[str, Tensor]) -> nn.Linear:
    """A logistic regression on the real training images, as a linear layer: images
    [N, 1, 8, 8] flattened -> class scores [N, 10] (their argmax is scikit-learn's predict)."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(max_iter=5000).fit(train["image"].flatten(1).numpy(), train["y"])
    layer = nn.Linear(64, 10)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(fit.coef_, dtype=torch.float32))
        layer.bias.copy_(torch.as_tensor(fit.intercept_, dtype=torch.float32))
    return layer.eval()


def image_classifier(train: dict[str, Tensor]) -> Callable[[Tensor], Tensor]:
    """images [N, 1, 8, 8] -> classes [N], by `classifier_layer`."""
    layer = classifier_layer(train)
    return lambda images: layer(images.flatten(1)).argmax(-1)


@torch.no_grad()
def coherence(
    adapter: Adapter, test: dict[str, Tensor], classify: Callable[[Tensor], Tensor]
) -> dict[str, float]:
    """Accuracy of the label generated from the image, and of the class of the image generated
    from the label (one posterior draw each); None for a direction the model does not generate
    (the adapter's `generate` returns None)."""
    labels = adapter.generate(test, "image", "label")
    images = adapter.generate(test, "label", "image")
    return {
        "image_to_label": None
        if labels is None
        else float((labels.argmax(-1) == test["y"]).float().mean()),
        "label_to_image": None
        if images is None
        else float((classify(images) == test["y"]).float().mean()),
    }
