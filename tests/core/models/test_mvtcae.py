"""MVTCAE's objective against a hand computation (Hwang et al. 2021; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    batch,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_normal,
    kl_standard,
    log_lik,
    observed,
    poe,
    tiny,
    weight,
)


@pytest.mark.usefixtures("fixed_noise")
def test_loss_weighs_reconstruction_and_both_kl_terms_by_alpha_and_the_modality_count():
    """((M − α)/M)·(−rec) + β[(α/M) Σ_m KL(q(z|X) ‖ q(z|x_m)) + (1 − α) KL(q(z|X) ‖ p)], with
    q(z|X) a PoE without the prior expert and M the sample's number of modalities."""
    alpha, beta = 0.3, 1.7
    model = tiny("mvtcae", alpha=alpha, beta=beta)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        mu, s = poe(list(experts.values()), prior=False)
        z = mu + s * eps(0)
        rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        n = len(have)
        to_experts = sum(kl_normal(mu, s, *experts[m]) for m in have)
        reg = alpha / n * to_experts + (1 - alpha) * kl_standard(mu, s)
        losses.append((n - alpha) / n * -rec + beta * reg)
    expected = torch.stack(losses).mean()
    torch.testing.assert_close(model(b).loss, expected, rtol=1e-5, atol=1e-5)
