"""mmJSD's objective against a hand computation (Sutter et al. 2020; MODELS.md)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.core.models.objective_helpers import (
    batch,
    decode_with_private,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture; mixtures pick their first available component)
    kl_normal,
    observed,
    tiny,
)


def _geometric_mean(normals, weight_each):
    """The weighted geometric mean of Gaussians: precisions and precision-weighted means add,
    each times its weight."""
    precision = sum(weight_each / s**2 for _, s in normals)
    mean = sum(weight_each * mu / s**2 for mu, s in normals) / precision
    return mean, precision.rsqrt()


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("private", [None, 1])
def test_loss_is_moe_reconstruction_plus_alpha_times_the_jensen_shannon_to_the_dynamic_prior(
    private,
):
    """−Σ_m log p(x_m|z), z from the sample's mixture, + α Σ_{j∈X∪{p}} π KL(q_j ‖ f), π = 1/(M+1),
    f the π-weighted geometric mean of the experts and N(0, I); with private latents, x_m is
    decoded from [z, w_m] and β Σ_m KL(q(w_m|x_m) ‖ p) is added."""
    alpha, beta = 0.8, 0.6
    model = tiny("mmjsd", alpha=alpha, beta=beta, modalities_specific_dim=private)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        first_mu, first_s = experts[have[0]]  # the mixture's draw: its first available expert
        z = first_mu + first_s * eps(0)
        rec, kl_private = decode_with_private(model, b, i, have, z, private)
        pi = 1 / (len(have) + 1)
        prior = (torch.zeros(2), torch.ones(2))
        f = _geometric_mean([*experts.values(), prior], pi)
        js = pi * sum(kl_normal(*q, *f) for q in [*experts.values(), prior])
        losses.append(-rec + alpha * js + beta * kl_private)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_the_multiview_ae_form_leaves_the_prior_out_of_the_sum_and_draws_from_it_too(
    monkeypatch,
):
    """js_form="multiview_ae": α Σ_{j∈X} KL(q_j ‖ f) / (M+1), the prior's term left out, and
    the reconstruction's mixture has N(0, I) as its last component (drawn here)."""
    from core.models import distributions as dists

    def last_available(self, n_samples, generator=None):
        last = self.log_weights.shape[-1] - 1 - self.log_weights.flip(-1).argmax(-1)
        return last.expand(n_samples, -1)

    monkeypatch.setattr(dists.Mixture, "choose", last_available)
    alpha = 0.8
    model = tiny("mmjsd", alpha=alpha, js_form="multiview_ae")
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        z = torch.zeros(2) + torch.ones(2) * eps(0)  # the prior component's draw
        rec, _ = decode_with_private(model, b, i, have, z, None)
        pi = 1 / (len(have) + 1)
        prior = (torch.zeros(2), torch.ones(2))
        f = _geometric_mean([*experts.values(), prior], pi)
        js = pi * sum(kl_normal(*q, *f) for q in experts.values())
        losses.append(-rec + alpha * js)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)
    paper = tiny("mmjsd", alpha=alpha)
    assert not torch.isclose(paper(b).loss, model(b).loss)


def test_the_dynamic_prior_of_one_expert_is_its_geometric_mean_with_the_prior():
    model = tiny("mmjsd")
    mu, s = torch.tensor([[[0.4, -1.0]]]), torch.tensor([[[0.5, 2.0]]])
    from core.models.distributions import Diagonal

    f = model.dynamic_prior(Diagonal(mu, s), torch.tensor([[True]]))
    mean, scale = _geometric_mean([(mu[0, 0], s[0, 0]), (torch.zeros(2), torch.ones(2))], 0.5)
    torch.testing.assert_close(f.loc[0], mean)
    torch.testing.assert_close(f.scale[0], scale)
    assert math.isclose(float(f.scale[0, 0]), (0.5 * (1 / 0.25 + 1)) ** -0.5, rel_tol=1e-6)


def test_the_multiview_ae_form_infers_with_the_dynamic_prior_or_the_single_given_expert():
    """multi-view-AE's encode: f (the geometric mean, weights 1/(M+1), of the given experts and
    the prior) for a sample given both modalities, the expert itself for one given alone; the
    paper form infers with the experts' mixture."""
    from core.models.distributions import Diagonal, Mixture

    mu = torch.tensor([[[0.4, -1.0], [0.1, 0.2]], [[-0.3, 0.5], [2.0, 1.0]]])  # [M=2, B=2, D=2]
    s = torch.tensor([[[0.5, 2.0], [1.5, 0.3]], [[0.7, 0.9], [0.2, 1.1]]])
    mask = torch.tensor([[True, False], [True, True]])  # sample 0: both; sample 1: the second
    q = tiny("mmjsd", js_form="multiview_ae").posterior(None, mask, Diagonal(mu, s))
    prior = (torch.zeros(2), torch.ones(2))
    mean, scale = _geometric_mean([(mu[0, 0], s[0, 0]), (mu[1, 0], s[1, 0]), prior], 1 / 3)
    torch.testing.assert_close(q.loc[0], mean)
    torch.testing.assert_close(q.scale[0], scale)
    torch.testing.assert_close(q.loc[1], mu[1, 1])
    torch.testing.assert_close(q.scale[1], s[1, 1])
    assert isinstance(tiny("mmjsd").posterior(None, mask, Diagonal(mu, s)), Mixture)
