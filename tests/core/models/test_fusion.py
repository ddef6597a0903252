"""Fusion maths against closed forms: PoE of Gaussians, MoPoE subsets, per-sample mixtures."""

from __future__ import annotations

import itertools

import torch
from torch.distributions import Laplace, Normal
from torch.distributions import kl_divergence as torch_kl

from core.models.distributions import Diagonal, Mixture, kl_divergence
from core.models.fusion import (
    mixture_of_experts,
    mixture_of_subsets,
    product_of_experts,
    subset_products,
    subsets_matrix,
)


def _experts(m=3, b=4, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, b, d, generator=g), torch.rand(m, b, d, generator=g) + 0.3


def test_poe_of_two_gaussians_and_the_prior_matches_the_closed_form():
    loc = torch.tensor([[[1.0]], [[3.0]]])  # two experts, one sample, one dim
    scale = torch.tensor([[[1.0]], [[0.5]]])
    q = product_of_experts(loc, scale, torch.ones(2, 1, dtype=torch.bool), prior_expert=True)
    precision = 1 / 1.0 + 1 / 0.25 + 1  # experts + N(0, 1)
    assert torch.allclose(q.scale, torch.tensor([[precision**-0.5]]))
    assert torch.allclose(q.loc, torch.tensor([[(1.0 / 1.0 + 3.0 / 0.25) / precision]]))


def test_poe_leaves_out_masked_experts_and_without_prior_a_single_expert_is_itself():
    loc, scale = _experts()
    mask = torch.tensor([[True, False, True, False], [False] * 4, [False, True, True, False]])
    mask[0, 3] = True
    q = product_of_experts(loc, scale, mask, prior_expert=False)
    torch.testing.assert_close(q.loc[0], loc[0, 0])
    torch.testing.assert_close(q.scale[1], scale[2, 1])
    both = product_of_experts(
        loc[[0, 2], 2:3], scale[[0, 2], 2:3], torch.ones(2, 1, dtype=torch.bool), False
    )
    torch.testing.assert_close(q.loc[2], both.loc[0])


def test_subset_enumeration_is_all_non_empty_subsets_by_size():
    s = subsets_matrix(3)
    assert s.shape == (7, 3)
    rows = [tuple(r.nonzero().flatten().tolist()) for r in s]
    assert rows == [(0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)]
    assert len(subsets_matrix(5)) == 2**5 - 1
    assert subsets_matrix(3, [[0, 2]]).tolist() == [[True, False, True]]


def test_batched_subset_products_equal_one_poe_per_subset():
    loc, scale = _experts(m=3, b=5, d=3)
    mask = torch.rand(3, 5, generator=torch.Generator().manual_seed(3)) > 0.3
    subsets = subsets_matrix(3)
    prior_on = subsets.all(1)
    joint, valid = subset_products(loc, scale, mask, subsets, prior_on)
    for s, members in enumerate(subsets):
        single = product_of_experts(
            loc, scale, members.unsqueeze(1).expand(3, 5), prior_expert=bool(prior_on[s])
        )
        torch.testing.assert_close(joint.loc[s], single.loc)
        torch.testing.assert_close(joint.scale[s], single.scale)
        expected_valid = (~members.unsqueeze(1) | mask).all(0)
        assert torch.equal(valid[s], expected_valid)


def test_mixture_of_experts_draws_each_sample_from_its_own_available_experts():
    loc = torch.stack([torch.full((3, 1), -100.0), torch.full((3, 1), 100.0)])  # [2, 3, 1]
    scale = torch.full((2, 3, 1), 1e-3)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    mix = mixture_of_experts(loc, scale, mask, "normal")
    z = mix.rsample(2000, torch.Generator().manual_seed(0))[..., 0]  # [S, B]
    assert (z[:, 0] < 0).all() and (z[:, 1] > 0).all()
    frac = (z[:, 2] > 0).float().mean()
    assert 0.45 < frac < 0.55  # uniform over the two experts of sample 2


def test_a_mixture_with_the_prior_expert_draws_from_n01_as_one_more_component():
    loc = torch.full((1, 2, 1), 100.0)  # one expert, far from the prior
    scale = torch.full((1, 2, 1), 1e-3)
    mask = torch.tensor([[True, False]])
    mix = mixture_of_experts(loc, scale, mask, "normal", prior_expert=True)
    z = mix.rsample(4000, torch.Generator().manual_seed(0))[..., 0]  # [S, B]
    assert 0.45 < float((z[:, 0] > 50).float().mean()) < 0.55  # half expert, half prior
    assert (z[:, 1].abs() < 6).all()  # no expert: the prior alone
    assert 0.9 < float(z[:, 1].std()) < 1.1


def test_mixture_log_prob_is_the_weighted_sum_of_component_densities():
    loc, scale = _experts(m=2, b=3, d=2)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    mix = mixture_of_experts(loc, scale, mask, "laplace")
    z = torch.randn(4, 3, 2)
    dens = Laplace(loc, scale).log_prob(z.unsqueeze(1)).sum(-1).exp()  # [S, M, B]
    w = mask.float() / mask.float().sum(0)
    expected = (dens * w).sum(1).log()
    torch.testing.assert_close(mix.log_prob(z), expected)


def test_mixture_of_subsets_weights_only_valid_subsets():
    joint = Diagonal(torch.zeros(3, 2, 1), torch.ones(3, 2, 1))
    valid = torch.tensor([[True, True], [False, True], [True, True]])
    mix = mixture_of_subsets(joint, valid)
    assert isinstance(mix, Mixture)
    torch.testing.assert_close(mix.log_weights.exp(), torch.tensor([[0.5, 0, 0.5], [1 / 3] * 3]))


def test_kl_divergences_match_torch():
    loc, scale = _experts(m=2, b=3, d=4)
    for family, dist in (("normal", Normal), ("laplace", Laplace)):
        p, q = Diagonal(loc[0], scale[0], family), Diagonal(loc[1], scale[1], family)
        expected = torch_kl(dist(loc[0], scale[0]), dist(loc[1], scale[1])).sum(-1)
        torch.testing.assert_close(kl_divergence(p, q), expected)


def test_diagonal_log_prob_and_sampling_match_the_family():
    p = Diagonal(torch.tensor([1.0, -2.0]), torch.tensor([0.5, 2.0]), "laplace")
    z = p.rsample(20000, torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), p.loc, atol=0.05, rtol=0)
    torch.testing.assert_close(z.std(0), p.scale * 2**0.5, atol=0.05, rtol=0.02)
    x = torch.randn(5, 2)
    torch.testing.assert_close(p.log_prob(x), Laplace(p.loc, p.scale).log_prob(x).sum(-1))


def test_all_subsets_of_four_modalities_are_distinct():
    rows = {tuple(r.tolist()) for r in subsets_matrix(4)}
    assert len(rows) == 15 and all(any(r) for r in rows)
    assert set(itertools.product([False, True], repeat=4)) - rows == {(False,) * 4}
