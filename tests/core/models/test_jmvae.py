"""JMVAE's objective against a hand computation (Suzuki et al. 2016; MODELS.md), with this
project's rule for incomplete samples."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    LINEAR,
    D,
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


def joint(model, i: int) -> tuple[torch.Tensor, torch.Tensor]:
    """q(z|X): the head over the concatenated features of every modality."""
    b = batch()
    feats = [model.joint_features[m](b.data[m][i : i + 1]) for m in ("a", "b")]
    out = model.joint_head(torch.cat(feats, -1))[0]
    return out[:D], torch.exp(0.5 * out[D:])


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(("epoch", "a_t"), [(2, 0.4), (9, 1.0)])
def test_complete_samples_train_the_joint_objective_and_incomplete_ones_their_subset_elbo(
    epoch, a_t
):
    """Complete: −rec(z ~ q(z|X)) + a(t)[β KL(q(z|X) ‖ p) + α Σ_m KL(q(z|X) ‖ q(z|x_m))].
    Incomplete: −rec(z ~ q_S) + a(t) β KL(q_S ‖ p), q_S the PoE of its observed experts."""
    alpha, beta = 0.4, 1.5
    model = tiny("jmvae", alpha=alpha, beta=beta, warmup=5, joint_features=3, joint_encoder=LINEAR)
    model.set_epoch(epoch)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        if len(have) == 2:
            mu, s = joint(model, i)
            reg = beta * kl_standard(mu, s) + alpha * sum(
                kl_normal(mu, s, *e) for e in experts.values()
            )
        else:
            mu, s = poe(list(experts.values()), prior=False)
            reg = beta * kl_standard(mu, s)
        z = mu + s * eps(0)
        rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        losses.append(-rec + a_t * reg)
    expected = torch.stack(losses).mean()
    torch.testing.assert_close(model(b).loss, expected, rtol=1e-5, atol=1e-5)
