"""PriorSampler: draws from the model's prior, needs no data, plugs into model.sample."""

from __future__ import annotations

import torch

from core.samplers import PriorSampler


def test_prior_sampler_matches_prior_moments(mvae) -> None:
    sampler = PriorSampler().fit(mvae)
    z = sampler.sample(20_000, generator=torch.Generator().manual_seed(0)).z
    assert z.shape == (1, 20_000, mvae.latent_dim)
    torch.testing.assert_close(z[0].mean(0), torch.zeros(4), atol=0.03, rtol=0)
    torch.testing.assert_close(z[0].var(0), torch.ones(4), atol=0.05, rtol=0)
    prior = mvae.prior()
    torch.testing.assert_close(sampler.log_prob(z[0, :10]), prior.log_prob(z[0, :10]))


def test_prior_sampler_takes_the_model_family(mvae) -> None:
    sampler = PriorSampler().fit(mvae)
    assert sampler.options.family == mvae.posterior_family
    assert sampler.config()["spaces"] == {"shared": 4}


def test_model_sample_with_prior_sampler_is_reproducible(mvae) -> None:
    sampler = PriorSampler().fit(mvae)
    a = mvae.sample(7, sampler=sampler, generator=torch.Generator().manual_seed(3))
    b = mvae.sample(7, sampler=sampler, generator=torch.Generator().manual_seed(3))
    assert a["image"].shape == (7, 1, 8, 8) and a["label"].shape == (7, 10)
    for m in a:
        assert torch.equal(a[m], b[m])
