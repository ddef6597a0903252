"""The posterior protocol: every kind of posterior samples, scores and summarises itself the
same way (rsample, log_prob, mean, stddev, entropy, reparameterize, select)."""

from __future__ import annotations

import pytest
import torch
import zuko
from torch.distributions import Laplace, Normal

from core.models.distributions import Diagonal, FlowPosterior, Mixture, Noise, Posterior
from core.models.fusion import mixture_of_subsets

G = torch.Generator().manual_seed(0)
LOC, SCALE = torch.randn(3, 2, generator=G), torch.rand(3, 2, generator=G) + 0.3


def posteriors() -> dict[str, Posterior]:
    log_w = torch.tensor([[0.0, -1.0], [0.0, float("-inf")], [-2.0, 0.0]])
    comps = Diagonal(torch.randn(2, 3, 2, generator=G) * 2, torch.rand(2, 3, 2, generator=G) + 0.2)
    torch.manual_seed(0)
    flow = zuko.flows.MAF(2, transforms=1, hidden_features=[8])
    return {
        "normal": Diagonal(LOC, SCALE, "normal"),
        "laplace": Diagonal(LOC, SCALE, "laplace"),
        "mixture": Mixture(comps, log_w.log_softmax(-1)),
        "flow": FlowPosterior(Diagonal(LOC, SCALE), flow.transform()),
    }


@pytest.mark.parametrize("kind", ["normal", "laplace", "mixture", "flow"])
def test_draws_match_the_reported_moments_and_the_density_integrates(kind):
    post = posteriors()[kind]
    z = post.rsample(40_000, torch.Generator().manual_seed(1)).detach()
    assert z.shape == (40_000, 3, 2) and post.batch_shape == (3,)
    std = post.stddev.detach()
    # exact moments, except the flow's: a 256-draw Monte-Carlo estimate (error ~ std / 16)
    tol = 0.25 * std if kind == "flow" else torch.full_like(std, 0.06)
    assert ((z.mean(0) - post.mean.detach()).abs() <= tol).all()
    assert ((z.std(0) - std).abs() <= tol + 0.03 * std).all()
    # the density integrates to one (a grid over the plane)
    grid = torch.linspace(-12, 12, 481)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    pts = torch.stack([xx, yy], -1).reshape(-1, 1, 2).expand(-1, 3, 2)
    mass = post.log_prob(pts).exp().sum(0) * (grid[1] - grid[0]) ** 2
    torch.testing.assert_close(mass.detach(), torch.ones(3), atol=0.02, rtol=0)


@pytest.mark.parametrize("kind", ["normal", "laplace", "mixture", "flow"])
def test_reparameterize_gives_the_same_law_and_select_the_same_rows(kind):
    post = posteriors()[kind]
    noise = Noise.draw(20_000, 3, 2, post.family, torch.Generator().manual_seed(2))
    z = post.reparameterize(noise).detach()
    drawn = post.rsample(20_000, torch.Generator().manual_seed(3)).detach()
    torch.testing.assert_close(z.mean(0), drawn.mean(0), atol=0.08, rtol=0)
    torch.testing.assert_close(z.std(0), drawn.std(0), atol=0.08, rtol=0.03)
    rows = torch.tensor([2, 0])
    part = post.select(rows)
    torch.testing.assert_close(part.mean.detach(), post.mean.detach()[rows])
    torch.testing.assert_close(
        part.reparameterize(noise.rows(rows)), post.reparameterize(noise)[:, rows]
    )


@pytest.mark.parametrize(("family", "reference"), [("normal", Normal), ("laplace", Laplace)])
def test_diagonal_entropy_and_log_prob_are_the_closed_forms(family, reference):
    post = Diagonal(LOC, SCALE, family)
    torch.testing.assert_close(post.entropy(), reference(LOC, SCALE).entropy().sum(-1))
    z = torch.randn(5, 3, 2, generator=G)
    torch.testing.assert_close(post.log_prob(z), reference(LOC, SCALE).log_prob(z).sum(-1))


def test_entropy_without_a_closed_form_says_so():
    with pytest.raises(NotImplementedError, match="Mixture: entropy has no closed form"):
        posteriors()["mixture"].entropy()


def test_flow_moments_do_not_depend_on_the_rest_of_the_batch():
    post = posteriors()["flow"]
    alone = post.select(slice(1, 2))
    torch.testing.assert_close(alone.mean, post.mean[1:2])
    torch.testing.assert_close(alone.stddev, post.stddev[1:2])


def test_stratified_draws_deal_the_components_out_evenly_among_available_ones():
    valid = torch.ones(3, 12, dtype=torch.bool)  # 3 subsets, 12 complete samples
    valid[0, :4] = False  # the first four samples lack subset 0
    comps = Diagonal(torch.arange(3.0).view(3, 1, 1).expand(3, 12, 1), torch.full((3, 12, 1), 1e-6))
    mixture = mixture_of_subsets(comps, valid)
    counts = torch.zeros(3)
    for seed in range(30):
        chosen = mixture.stratified_rsample(torch.Generator().manual_seed(seed))[0, :, 0].round()
        assert (chosen[:4] != 0).all()  # never an unavailable component
        per = torch.bincount(chosen[4:].long(), minlength=3)
        counts += per
    # samples 4-11 see three components: dealt out evenly over many batches (random otherwise)
    assert counts.min() > 0.25 * counts.sum()
    complete = mixture_of_subsets(comps, torch.ones(3, 12, dtype=torch.bool))
    chosen = complete.stratified_rsample(torch.Generator().manual_seed(0))[0, :, 0].round().long()
    assert torch.bincount(chosen, minlength=3).tolist() == [4, 4, 4]  # exactly balanced


def test_stratified_draws_without_a_generator_come_from_the_global_stream():
    """With no generator, the draw is the global stream's (as a compiled graph replays it:
    its `randperm` is called without a generator argument, which inductor's C++ wrapper
    supports); with one, that generator's, the global stream untouched."""
    comps = Diagonal(torch.arange(3.0).view(3, 1, 1).expand(3, 12, 1), torch.full((3, 12, 1), 1e-6))
    mixture = mixture_of_subsets(comps, torch.ones(3, 12, dtype=torch.bool))
    torch.manual_seed(5)
    first = mixture.stratified_rsample()
    torch.manual_seed(5)
    again = mixture.stratified_rsample()
    torch.testing.assert_close(first, again)
    torch.manual_seed(5)
    state = torch.get_rng_state()
    own = mixture.stratified_rsample(torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    torch.testing.assert_close(own, first)  # the same seed in either stream
