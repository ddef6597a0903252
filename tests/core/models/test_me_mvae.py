"""me_mVAE's objective against a hand computation (multi-view-AE's me_mVAE; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    batch,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    log_lik,
    observed,
    poe,
    tiny,
    weight,
)


def _mean_join(experts):
    """multi-view-AE's MeanRepresentation: mean of the means and of the log-variances."""
    mu = torch.stack([m for m, _ in experts]).mean(0)
    log_var = torch.stack([2 * s.log() for _, s in experts]).mean(0)
    return mu, torch.exp(0.5 * log_var)


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("join_type", ["poe", "mean"])
def test_loss_is_the_joint_elbo_plus_each_modality_s_own_elbo(join_type: str):
    """−log p(X|z) + β KL(q(z|X) ‖ p) + Σ_m [−log p(x_m|z_m) + β KL(q(z|x_m) ‖ p)]."""
    beta = 0.7
    model = tiny("me_mvae", beta=beta, join_type=join_type)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        joint = list(experts.values())
        mu, s = poe(joint, prior=False) if join_type == "poe" else _mean_join(joint)
        z = mu + s * eps(0)
        loss = -sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        loss = loss + beta * kl_standard(mu, s)
        for m in have:
            own_mu, own_s = experts[m]
            own = weight(m) * log_lik(model, m, own_mu + own_s * eps(0), b.data[m][i])
            loss = loss - own + beta * kl_standard(own_mu, own_s)
        losses.append(loss)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)
