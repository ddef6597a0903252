"""CRMVAE's objective against a hand computation (MultiVae's CRMVAE; MODELS.md)."""

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
def test_loss_averages_joint_and_unimodal_reconstructions_and_the_divergences():
    """−Σ_m [log p(x_m|z) + log p(x_m|z_m)] / (2(M+1)) + β [KL(q(z|X) ‖ p) +
    Σ_m KL(q(z|X) ‖ q(z|x_m))] / (M+1), PoE without prior, M the sample's modality count."""
    beta = 1.3
    model = tiny("crmvae", beta=beta)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        mu, s = poe(list(experts.values()), prior=False)
        z = mu + s * eps(0)
        rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        for m in have:  # each modality from a draw of its own expert
            own_mu, own_s = experts[m]
            rec = rec + weight(m) * log_lik(model, m, own_mu + own_s * eps(0), b.data[m][i])
        n = len(have)
        divergence = kl_standard(mu, s) + sum(kl_normal(mu, s, *experts[m]) for m in have)
        losses.append(-rec / (2 * (n + 1)) + beta * divergence / (n + 1))
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)
