"""Decoder likelihoods: log-densities against torch.distributions, learned scales, means and
the distributions the service samples from."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError
from torch.distributions import Bernoulli, Laplace, Normal, OneHotCategorical

from core.nn.likelihoods import LikelihoodSpec, build_likelihood


def make(kind: str, shape=(2, 3), **spec):
    return build_likelihood(LikelihoodSpec(kind=kind, **spec), shape)


@pytest.mark.parametrize(("kind", "reference"), [("normal", Normal), ("laplace", Laplace)])
def test_location_scale_log_prob_sums_the_event(kind, reference):
    lik = make(kind, scale=0.7)
    out, x = torch.randn(4, 5, 2, 3), torch.randn(4, 5, 2, 3)
    expected = reference(out, 0.7).log_prob(x).sum((-1, -2))
    torch.testing.assert_close(lik.log_prob(out, x), expected)
    assert torch.equal(lik.mean(out), out)
    dist = lik.distribution(out)
    assert dist.batch_shape == (4, 5) and dist.event_shape == (2, 3)
    torch.testing.assert_close(dist.log_prob(x), expected)


def test_learned_scale_is_a_parameter_and_a_fixed_one_a_buffer():
    learned = make("normal", scale=2.0, learn_scale=True)
    fixed = make("normal", scale=2.0)
    assert [n for n, _ in learned.named_parameters()] == ["log_scale"]
    assert list(fixed.parameters()) == [] and "log_scale" in dict(fixed.named_buffers())
    torch.testing.assert_close(learned.log_scale, torch.full((2, 3), math.log(2.0)))
    out, x = torch.zeros(1, 2, 3), torch.ones(1, 2, 3)
    learned.log_prob(out, x).sum().backward()
    assert learned.log_scale.grad is not None


def test_bernoulli_takes_logits_and_grey_targets():
    lik = make("bernoulli", shape=(1, 2, 2))
    logits, x = torch.randn(3, 1, 2, 2), torch.rand(3, 1, 2, 2)
    expected = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none")
    torch.testing.assert_close(lik.log_prob(logits, x), expected.sum((-1, -2, -3)))
    binary = (x > 0.5).float()
    torch.testing.assert_close(
        lik.log_prob(logits, binary), Bernoulli(logits=logits).log_prob(binary).sum((-1, -2, -3))
    )
    torch.testing.assert_close(lik.mean(logits), torch.sigmoid(logits))


def test_categorical_over_the_last_dimension():
    lik = make("categorical", shape=(4,))
    logits = torch.randn(2, 3, 4)
    x = torch.eye(4)[torch.tensor([[0, 1, 3], [2, 2, 0]])]
    torch.testing.assert_close(
        lik.log_prob(logits, x), OneHotCategorical(logits=logits).log_prob(x)
    )
    torch.testing.assert_close(lik.mean(logits), torch.softmax(logits, -1))
    assert lik.distribution(logits).event_shape == (4,)


def test_specs_are_strict():
    with pytest.raises(ValidationError, match="scael"):
        LikelihoodSpec(kind="normal", scael=1.0)
    with pytest.raises(ValidationError, match="scale"):
        LikelihoodSpec(kind="normal", scale=0)
    with pytest.raises(ValidationError, match="kind"):
        LikelihoodSpec(kind="poisson")
