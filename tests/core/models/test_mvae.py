"""MVAE's objective against a hand computation (Wu & Goodman 2018; MODELS.md)."""

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
    mu = torch.stack([m for m, _ in experts]).mean(0)
    return mu, torch.exp(torch.stack([s.log() for _, s in experts]).mean(0))


def hand_loss(model, beta: float, join: str = "poe", prior: bool = True) -> torch.Tensor:
    """−mean_i Σ_T ELBO_T: T = the joint set and each modality alone; each term's posterior a
    PoE of the prior and the experts T has in sample i (or, options, a PoE without the prior,
    or their mean); terms with none of them skipped."""
    b = batch()
    total = []
    for i, have in enumerate(observed()):
        elbos = []
        for term in (["a", "b"], ["a"], ["b"]):
            used = [m for m in term if m in have]
            if not used:
                continue
            experts = [expert(model, m, b.data[m][i]) for m in used]
            mu, s = poe(experts, prior=prior) if join == "poe" else _mean_join(experts)
            z = mu + s * eps(0)
            rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in used)
            elbos.append(rec - beta * kl_standard(mu, s))
        total.append(-sum(elbos))
    return torch.stack(total).mean()


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(
    ("annealing", "epoch", "progress", "factor"),
    [
        ("per_step", 1, 0.0, 0.0),  # MultiVae's schedule: 0 at the very first step
        ("per_step", 3, 2.5, 0.25),  # halfway through epoch 3 of warmup 10
        ("per_step", 10, 9.5, 1.0),  # the whole of epoch `warmup` has the full weight
        ("per_step", 12, 11.0, 1.0),
        ("per_epoch", 3, 2.5, 0.3),  # the older option: epoch / warmup
    ],
)
def test_loss_is_the_sum_of_joint_and_unimodal_elbos_with_annealed_beta(
    annealing, epoch, progress, factor
):
    model = tiny("mvae", beta=2.0, warmup=10, annealing=annealing)
    model.set_epoch(epoch)
    model.set_progress(progress)
    got = model(batch()).loss
    torch.testing.assert_close(got, hand_loss(model, 2.0 * factor), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_evaluation_is_not_annealed():
    model = tiny("mvae", beta=2.0, warmup=10).eval()
    model.set_epoch(1)
    torch.testing.assert_close(model(batch()).loss, hand_loss(model, 2.0), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(("join_type", "use_prior"), [("poe", False), ("mean", True)])
def test_the_joint_posterior_options_of_multi_view_ae(join_type, use_prior):
    model = tiny("mvae", beta=1.5, warmup=0, join_type=join_type, use_prior=use_prior)
    got = model(batch()).loss
    expected = hand_loss(model, 1.5, join=join_type, prior=use_prior)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
