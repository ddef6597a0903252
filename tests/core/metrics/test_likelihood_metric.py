"""Likelihood metrics against the closed-form marginal of a linear-Gaussian model."""

from __future__ import annotations

import pytest
import torch
from metric_fixtures import exact_log_marginal, linear_gaussian, linear_gaussian_data

from core.metrics import conditional_log_likelihood, conditional_log_prob, joint_nll
from core.models import MVAE
from core.models.distributions import Diagonal, Mixture

NAMES = ["a", "b"]


@pytest.mark.parametrize("family", ["mvae", "jmvae"])
def test_exact_posterior_gives_exact_joint_likelihood(family):
    model = linear_gaussian(family)
    ds = linear_gaussian_data(model)
    exact = exact_log_marginal(model, ds.data, NAMES)
    g = torch.Generator().manual_seed(0)
    estimate = model.log_likelihood(ds.batch(), k=8, generator=g).double()
    torch.testing.assert_close(estimate, exact, atol=1e-3, rtol=0)
    report = joint_nll(model, ds, k=8, batch_size=10, generator=g)
    assert report["joint_nll"] == pytest.approx(float(-exact.mean()), abs=1e-3)
    assert report["n"] == len(ds) and report["k"] == 8


def test_importance_sampling_converges_with_approximate_proposal():
    model = linear_gaussian("mvae", perturb=True)
    ds = linear_gaussian_data(model)
    exact = exact_log_marginal(model, ds.data, NAMES)
    g = torch.Generator().manual_seed(0)
    few = model.log_likelihood(ds.batch(), k=1, generator=g).double()
    assert (few - exact).abs().max() > 0.05  # the proposal is not the posterior
    report = joint_nll(model, ds, k=5000, max_batch=20000, generator=g)
    assert report["joint_nll"] == pytest.approx(float(-exact.mean()), abs=0.02)
    many = model.log_likelihood(ds.batch(), k=5000, max_batch=20000, generator=g).double()
    assert (many - exact).abs().max() < 0.05


class MixtureMVAE(MVAE):
    """The exact posterior mixed half-and-half with a shifted, wider component, per sample."""

    def posterior(self, batch, mask, experts):
        q = super().posterior(batch, mask, experts)
        comps = Diagonal(torch.stack([q.loc, q.loc + 1.5]), torch.stack([q.scale, 2 * q.scale]))
        log_w = torch.full((q.loc.shape[0], 2), 0.5).log()
        return Mixture(comps, log_w)


def test_mixture_proposal_is_unbiased():
    base = linear_gaussian("mvae")
    model = MixtureMVAE(base.config)
    model.load_state_dict(base.state_dict())
    model.eval()
    ds = linear_gaussian_data(model)
    exact = exact_log_marginal(model, ds.data, NAMES)
    g = torch.Generator().manual_seed(0)
    est = model.log_likelihood(ds.batch(), k=4000, max_batch=16000, generator=g).double()
    assert (est - exact).abs().max() < 0.05


@pytest.mark.parametrize("family", ["mvae", "jmvae"])
def test_conditional_ratio_estimator_matches_exact(family):
    model = linear_gaussian(family, perturb=family == "mvae")
    ds = linear_gaussian_data(model, n=16)
    exact = exact_log_marginal(model, ds.data, NAMES) - exact_log_marginal(model, ds.data, ["a"])
    g = torch.Generator().manual_seed(0)
    est = conditional_log_prob(model, ds.batch(), ["a"], ["b"], k=5000, generator=g).double()
    assert (est - exact).abs().max() < 0.05
    report = conditional_log_likelihood(model, ds, ["a"], ["b"], k=2000, generator=g)
    assert report["log_likelihood"] == pytest.approx(float(exact.mean()), abs=0.05)
    assert report["nll"] == pytest.approx(-report["log_likelihood"])


def test_conditional_posterior_estimator_exact_when_posterior_is():
    model = linear_gaussian("mvae")  # subset posteriors of this MVAE are exact
    ds = linear_gaussian_data(model, n=16)
    exact = exact_log_marginal(model, ds.data, NAMES) - exact_log_marginal(model, ds.data, ["b"])
    g = torch.Generator().manual_seed(0)
    est = conditional_log_prob(
        model, ds.batch(), ["b"], ["a"], k=5000, estimator="posterior", generator=g
    ).double()
    assert (est - exact).abs().max() < 0.05


def test_conditional_uses_only_samples_observing_given_and_targets():
    model = linear_gaussian("mvae")
    ds = linear_gaussian_data(model, n=12)
    masks = {"a": torch.arange(12) % 3 != 0, "b": torch.ones(12, dtype=torch.bool)}
    report = conditional_log_likelihood(model, ds.with_masks(masks), ["a"], ["b"], k=10)
    assert report["n"] == 8
    with pytest.raises(ValueError, match="also given"):
        conditional_log_prob(model, ds.batch(), ["a"], ["a"], k=2)


def test_trained_models_give_finite_nll(trained, dataset):
    report = joint_nll(trained, dataset.subset(slice(0, 40)), k=20)
    assert torch.isfinite(torch.tensor(report["joint_nll"]))
    assert report["joint_nll"] > 0
