"""PriorSampler: the model's own priors (learned ones included), needs no data."""

from __future__ import annotations

import torch

from core.models import MMVAE
from core.samplers import PriorSampler
from tests.core.samplers.helpers import train


def test_prior_sampler_covers_no_space_so_the_model_draws_its_priors(mvae) -> None:
    sampler = PriorSampler().fit(mvae)
    assert sampler.fitted and sampler.spaces == {} and sampler.sample(3) == {}
    assert sampler.config()["spaces"] == {}
    a = mvae.sample(7, sampler=sampler, generator=torch.Generator().manual_seed(3))
    b = mvae.sample(7, generator=torch.Generator().manual_seed(3))
    assert a["image"].shape == (7, 1, 8, 8) and a["label"].shape == (7, 10)
    for m in a:
        assert torch.equal(a[m], b[m])


def test_prior_draws_match_the_prior_moments(mvae) -> None:
    z = mvae.draw_prior(20_000, PriorSampler(), torch.Generator().manual_seed(0)).z
    assert z.shape == (1, 20_000, mvae.latent_dim)
    torch.testing.assert_close(z[0].mean(0), torch.zeros(4), atol=0.03, rtol=0)
    torch.testing.assert_close(z[0].var(0), torch.ones(4), atol=0.05, rtol=0)


def test_a_learned_prior_is_the_one_sampled() -> None:
    """MMVAE learns its prior's scale: the prior sampler draws from that, not from Laplace(0, 1)."""
    model = train(MMVAE, steps=5, K=2)
    with torch.no_grad():
        model.prior_raw_scale.copy_(torch.tensor([3.0, 0.0, 0.0, 0.0]))
    z = model.draw_prior(20_000, PriorSampler(), torch.Generator().manual_seed(0)).z[0]
    expected = model.prior().stddev
    assert expected[0] > 3 * expected[1]
    torch.testing.assert_close(z.std(0), expected, rtol=0.05, atol=0)
