"""MMVAE's objective against a hand computation (Shi et al. 2019; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    D,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    laplace_log_prob,
    log_lik,
    log_mean_exp,
    observed,
    tiny,
    weight,
)

K = 3


def laplace_expert(model, m: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loc, scale) with scale = softmax(raw)·D + 1e-6 (laplace_with_softmax)."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    return out[:D], torch.softmax(out[D:], -1) * D + 1e-6


def log_weights(model, beta: float) -> list[dict[str, list[torch.Tensor]]]:
    """Per sample, per observed modality m, the K values log w = Σ_n λ_n log p(x_n|z) +
    β[log p(z) − log q_MoE(z|X)] for z = loc_m + scale_m·ε_k."""
    b = batch()
    prior_scale = torch.softmax(model.prior_raw_scale, -1) * D + 1e-6
    out = []
    for i, have in enumerate(observed()):
        experts = {m: laplace_expert(model, m, b.data[m][i]) for m in have}
        per_expert = {}
        for m, (loc, scale) in experts.items():
            values = []
            for k in range(K):
                z = loc + scale * eps(k)
                rec = sum(weight(n) * log_lik(model, n, z, b.data[n][i]) for n in have)
                mixture = torch.logsumexp(
                    torch.stack([laplace_log_prob(z, *e) for e in experts.values()]), 0
                ) - torch.log(torch.tensor(float(len(have))))
                prior = laplace_log_prob(z, torch.zeros(D), prior_scale)
                values.append(rec + beta * (prior - mixture))
            per_expert[m] = values
        out.append(per_expert)
    return out


@pytest.mark.usefixtures("fixed_noise")
def test_iwae_looser_bound_averages_each_experts_estimate_outside_the_log():
    beta = 1.0
    model = tiny("mmvae", K=K, loss="iwae_looser", beta=beta)
    with torch.no_grad():
        model.prior_raw_scale.copy_(torch.tensor([0.3, -0.2]))
    per_sample = [
        torch.stack([log_mean_exp(v) for v in ws.values()]).mean()
        for ws in log_weights(model, beta)
    ]
    expected = -torch.stack(per_sample).mean()
    out = model(batch())
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.metrics["iwae_looser"], -expected, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_dreg_surrogate_weighs_log_weights_by_their_normalised_weights():
    """DReG's training value is −Σ_k w̃_k log w_k (w̃ = softmax over k, no gradient), averaged
    over experts; the IWAE bound is still reported, and evaluation returns it."""
    beta = 0.8
    model = tiny("mmvae", K=K, loss="dreg_looser", beta=beta)
    weights = log_weights(model, beta)
    surrogate, iwae = [], []
    for ws in weights:
        terms = [(torch.softmax(torch.stack(v), 0) * torch.stack(v)).sum() for v in ws.values()]
        surrogate.append(torch.stack(terms).mean())
        iwae.append(torch.stack([log_mean_exp(v) for v in ws.values()]).mean())
    out = model(batch())
    torch.testing.assert_close(out.loss, -torch.stack(surrogate).mean(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        out.metrics["iwae_looser"], torch.stack(iwae).mean(), rtol=1e-5, atol=1e-5
    )
    model.eval()
    torch.testing.assert_close(model(batch()).loss, -torch.stack(iwae).mean(), rtol=1e-5, atol=1e-5)
