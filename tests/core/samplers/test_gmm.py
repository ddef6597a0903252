"""GaussianMixtureSampler: recovers a known mixture; every covariance type samples and scores."""

from __future__ import annotations

import pytest
import torch

from core.samplers import GaussianMixtureSampler
from core.samplers.gmm import GaussianMixtureDensity, GMMOptions

MEANS = torch.tensor([[-3.0, 1.0], [3.0, -1.0]])


def two_blobs(n: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    comp = torch.randint(2, (n,), generator=g)
    return MEANS[comp] + 0.5 * torch.randn(n, 2, generator=g)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "tied", "spherical"])
def test_gmm_recovers_a_two_component_mixture(covariance_type: str) -> None:
    options = GMMOptions(n_components=2, covariance_type=covariance_type)
    density = GaussianMixtureDensity(2, options)
    density.fit(two_blobs(), torch.Generator().manual_seed(0))
    order = density.means[:, 0].argsort()
    torch.testing.assert_close(density.means[order], MEANS, atol=0.1, rtol=0)
    torch.testing.assert_close(density.weights, torch.full((2,), 0.5), atol=0.05, rtol=0)
    z = density.sample(4000, torch.Generator().manual_seed(1))
    assert ((z[:, 0] > 0).float().mean() - 0.5).abs() < 0.05
    held_out = two_blobs(500, seed=1)
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(held_out).sum(-1)
    assert density.log_prob(held_out).mean() > standard.mean()


def test_gmm_sampler_on_a_model(mvae, digits_train, digits_test) -> None:
    sampler = GaussianMixtureSampler(n_components=5).fit(
        mvae, digits_train, generator=torch.Generator().manual_seed(0)
    )
    z = mvae.encode(digits_test.batch(), mean=True).z[0]
    assert sampler.log_prob(z).mean() > mvae.prior().log_prob(z).mean()
    out = mvae.sample(6, sampler=sampler, generator=torch.Generator().manual_seed(0))
    assert out["image"].shape == (6, 1, 8, 8)


def test_gmm_needs_enough_latents(mvae, digits_train) -> None:
    with pytest.raises(ValueError, match="n_components"):
        GaussianMixtureSampler(n_components=50).fit(mvae, digits_train.subset(slice(0, 10)))


def test_unknown_option_is_an_error() -> None:
    with pytest.raises(ValueError, match="n_component"):
        GaussianMixtureSampler(n_component=3)
