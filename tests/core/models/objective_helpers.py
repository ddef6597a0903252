"""Hand computations of model objectives: a tiny model with fixed weights, a fixed batch with a
missing modality, fixed noise, and the textbook formulas written out with plain torch (no
project maths), so a refactor that changes a paper's loss fails the model's objective test.

Noise is fixed by patching `standard_noise`: every draw k along the first (sample) dimension is
ε_k = 0.25 (k + 1) − 0.6, for every sample and dimension; mixtures pick their first available
component. The helpers below use the model's networks (they are not the objective), never its
fusion, divergences or likelihood code.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor
from torch.distributions import Categorical, Laplace, Normal

from core.data.batch import Batch
from core.models import MultimodalVAE, build_model
from core.models import distributions as dists

MODALITIES = [
    {"name": "a", "shape": [3], "likelihood": {"kind": "normal", "scale": 0.5}, "weight": 2.0},
    {"name": "b", "shape": [4], "likelihood": {"kind": "categorical"}},
]
LINEAR = {"kind": "mlp", "hidden": []}
D = 2


def eps(k: int) -> float:
    return 0.25 * (k + 1) - 0.6


def fixed_noise_tensor(shape, family, like, generator=None) -> Tensor:
    k = torch.arange(shape[0], dtype=like.dtype, device=like.device)
    return (0.25 * (k + 1) - 0.6).view(-1, *([1] * (len(shape) - 1))).expand(shape).clone()


@pytest.fixture
def fixed_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dists, "standard_noise", fixed_noise_tensor)

    def first_available(self, n_samples, generator=None):
        return self.log_weights.argmax(-1).expand(n_samples, -1)

    monkeypatch.setattr(dists.Mixture, "choose", first_available)


def tiny(model_type: str, **options) -> MultimodalVAE:
    """Linear encoders and decoders, latent size 2, weights drawn from a fixed seed."""
    config = {
        "model_type": model_type,
        "modalities": MODALITIES,
        "latent_dim": D,
        "encoder": LINEAR,
        "decoder": LINEAR,
        **options,
    }
    model = build_model(config)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.6 * torch.randn(p.shape, generator=g))
    return model.train()


def batch() -> Batch:
    """3 samples: both modalities, only a, only b (the missing values are garbage)."""
    a = torch.tensor([[0.3, -1.2, 0.8], [1.5, 0.1, -0.4], [99.0, -99.0, 5.0]])
    b = torch.eye(4)[[2, 0, 3]]
    b[1] = 7.0  # under a False mask
    masks = {"a": torch.tensor([True, True, False]), "b": torch.tensor([True, False, True])}
    return Batch({"a": a, "b": b}, masks)


def observed() -> list[list[str]]:
    return [["a", "b"], ["a"], ["b"]]


def expert(model: MultimodalVAE, m: str, x: Tensor, dim: int = D) -> tuple[Tensor, Tensor]:
    """(μ, σ) of modality m's encoder on one sample x, σ = exp(½ log σ²) (Normal experts)."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    return out[:dim], torch.exp(0.5 * out[dim : 2 * dim])


def private_expert(model: MultimodalVAE, m: str, x: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """(μ, σ) of modality m's private latent of `size`: the encoder outputs after the shared
    ones (Normal experts)."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    return out[2 * D : 2 * D + size], torch.exp(0.5 * out[2 * D + size : 2 * D + 2 * size])


def decode_with_private(
    model: MultimodalVAE, b: Batch, i: int, have: list[str], z: Tensor, private: int | None
) -> tuple[Tensor, Tensor]:
    """(Σ_m λ_m log p(x_m | code_m), Σ_m KL(q(w_m|x_m) ‖ N(0, I))) for sample i: code_m = z, or
    [z, w_m] with w_m = μ + σ ε_0 from modality m's private latent of size `private`."""
    rec, kl_private = torch.tensor(0.0), torch.tensor(0.0)
    for m in have:
        code = z
        if private:
            w_mu, w_s = private_expert(model, m, b.data[m][i], private)
            code = torch.cat([z, w_mu + w_s * eps(0)])
            kl_private = kl_private + kl_standard(w_mu, w_s)
        rec = rec + weight(m) * log_lik(model, m, code, b.data[m][i])
    return rec, kl_private


def poe(experts: list[tuple[Tensor, Tensor]], prior: bool) -> tuple[Tensor, Tensor]:
    """Product of Gaussian experts (and N(0, 1) when `prior`): precisions add."""
    precision = sum(1 / s**2 for _, s in experts) + (1.0 if prior else 0.0)
    mean = sum(mu / s**2 for mu, s in experts) / precision
    return mean, precision.rsqrt()


def kl_normal(mu1: Tensor, s1: Tensor, mu0: Tensor, s0: Tensor) -> Tensor:
    """KL(N(mu1, s1²) ‖ N(mu0, s0²)) summed over dimensions."""
    return (torch.log(s0 / s1) + (s1**2 + (mu1 - mu0) ** 2) / (2 * s0**2) - 0.5).sum()


def kl_standard(mu: Tensor, s: Tensor) -> Tensor:
    return kl_normal(mu, s, torch.zeros_like(mu), torch.ones_like(s))


def log_lik(model: MultimodalVAE, m: str, z: Tensor, x: Tensor) -> Tensor:
    """log p(x_m | z) for one sample: Normal(decoder(z), 0.5) for a, Categorical for b."""
    out = model.decoders[m](z.unsqueeze(0))[0]
    if m == "a":
        return Normal(out, 0.5).log_prob(x).sum()
    return Categorical(logits=out).log_prob(x.argmax())


def weight(m: str) -> float:
    return {"a": 2.0, "b": 1.0}[m]


def laplace_log_prob(z: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    return Laplace(loc, scale).log_prob(z).sum()


def log_mean_exp(values: list[Tensor]) -> Tensor:
    return torch.logsumexp(torch.stack(values), 0) - math.log(len(values))
