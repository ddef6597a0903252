"""CMVAE's objective against a hand computation, and its clusters (Palumbo et al. 2024;
MODELS.md)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.core.models.objective_helpers import (
    D,
    batch,
    fixed_noise,  # noqa: F401  (fixture)
    laplace_log_prob,
    tiny,
)
from tests.core.models.test_mmvae_plus import K, P, looser_bound_by_hand

MEANS = torch.tensor([[0.5, -0.5], [-1.0, 0.2], [0.0, 1.0]])
LOGITS = torch.tensor([0.2, -0.3, 0.6])


def cmvae(**options):
    model = tiny("cmvae", K=K, modalities_specific_dim=P, number_of_clusters=3, **options)
    with torch.no_grad():
        model.cluster_means.copy_(MEANS)
        model.cluster_logits.copy_(LOGITS)
    return model


def log_joint_by_hand(u: torch.Tensor) -> torch.Tensor:
    """log p(c) + log p(u|c) per cluster c, unit-scale Laplace clusters."""
    log_pc = torch.log_softmax(LOGITS, -1)
    return torch.stack([log_pc[c] + laplace_log_prob(u, MEANS[c], torch.ones(D)) for c in range(3)])


@pytest.mark.usefixtures("fixed_noise")
def test_iwae_bound_takes_the_explicit_expectation_over_the_clusters_posterior():
    """MMVAE+'s bound with the prior term Σ_c q(c|u)[log p(c) + log p(u|c) − log q(c|u)] +
    log p(w_m), p(w_m) a standard Laplace."""
    beta = 0.8
    model = cmvae(loss="iwae_looser", beta=beta)

    def clustered_prior(u, w):
        log_joint = log_joint_by_hand(u)
        q_c = torch.softmax(log_joint, 0)
        expectation = (q_c * (log_joint - q_c.log())).sum()
        return expectation + laplace_log_prob(w, torch.zeros(P), torch.ones(P))

    expected = looser_bound_by_hand(model, beta, clustered_prior)
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


def test_the_shared_prior_is_the_cluster_mixture_and_q_c_is_bayes_rule():
    model = cmvae()
    u = torch.tensor([[[0.3, -0.1], [-0.8, 0.4]]])  # [S=1, B=2, D]
    prior = model.prior()
    for b in range(2):
        by_hand = log_joint_by_hand(u[0, b])
        torch.testing.assert_close(prior.log_prob(u)[0, b], torch.logsumexp(by_hand, 0))
        torch.testing.assert_close(
            model.cluster_posterior(u)[:, 0, b], torch.log_softmax(by_hand, 0)
        )
    assert prior.rsample(5).shape == (5, 1, D)


def test_predict_clusters_assigns_each_sample_its_most_probable_cluster():
    model = cmvae().eval()
    b = batch()
    g = torch.Generator().manual_seed(0)
    cluster, probs = model.predict_clusters(b, n_samples=20, generator=g)
    assert cluster.shape == (3,) and probs.shape == (3, 3)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3))
    assert torch.equal(cluster, probs.argmax(-1))
    has_b = batch()
    has_b.masks["b"][:] = True  # every sample given b alone
    has_b.data["b"][1] = torch.eye(4)[1]
    only_b = model.predict_clusters(has_b, given=["b"], n_samples=20, generator=g)[1]
    assert only_b.shape == (3, 3) and not torch.allclose(only_b, probs)


def test_the_shared_prior_is_not_a_learnable_scale():
    with pytest.raises(ValueError, match="learn_shared_prior"):
        tiny("cmvae", learn_shared_prior=True)


def clustered(means: torch.Tensor, beta: float = 1.0):
    """A CMVAE whose clusters have these means and equal weights."""
    model = cmvae(beta=beta).eval()
    with torch.no_grad():
        model.cluster_means.copy_(means)
        model.cluster_logits.zero_()
    return model


def test_pruning_selects_the_cluster_count_with_the_lowest_score_by_hand():
    """Codes sit on two of three cluster means: the third gets no votes and is dropped first;
    with q(c|u) one-hot, each count's score is −log p(u)/D = −(log(1/n) + log p(u|c))/D, lowest
    for two clusters, which are kept (one cluster is never scored, as in the paper)."""
    means = torch.tensor([[30.0, 30.0], [-30.0, -30.0], [0.0, 0.0]])
    model = clustered(means)
    far = means[:2]
    codes = [(torch.arange(4), torch.cat([far, far])), (torch.tensor([0, 1]), far)]
    pruned = model.select_clusters(codes, 4)
    at_mean = laplace_log_prob(far[0], far[0], torch.ones(D)).item()  # unit-scale clusters
    for n in (3, 2):
        assert pruned["scores"][n] == pytest.approx(-(math.log(1 / n) + at_mean) / D)
    assert pruned["kept"] == [0, 1] and set(pruned["scores"]) == {2, 3}
    assert torch.isinf(model.cluster_logits[2]) and torch.isfinite(model.cluster_logits[:2]).all()
    u = torch.zeros(1, 1, D)  # at the pruned cluster's mean
    assert model.cluster_posterior(u)[2].exp().item() == 0.0
    assert torch.isfinite(model.train()(batch()).loss)  # training may go on after pruning


def test_pruning_keeps_every_cluster_the_codes_need_and_weighs_uncertainty_by_beta():
    """Three separated groups of codes: dropping any cluster leaves its codes far from every
    mean, so the full set scores best. A code halfway between two means has q(c|u) = (1/2, 1/2):
    its entropy, log 2 / log 3 normalised, counts β times."""
    means = torch.tensor([[30.0, 30.0], [-30.0, -30.0], [30.0, -30.0]])
    assert clustered(means).select_clusters([(torch.arange(3), means)], 3)["kept"] == [0, 1, 2]

    def score_of_a_halfway_code(beta: float) -> float:
        model = clustered(torch.tensor([[1.0, 1.0], [-1.0, -1.0], [30.0, 30.0]]), beta)
        return model.select_clusters([(torch.tensor([0]), torch.zeros(1, D))], 1)["scores"][3]

    entropy = score_of_a_halfway_code(2.0) - score_of_a_halfway_code(1.0)
    assert entropy == pytest.approx(math.log(2) / math.log(3), abs=1e-4)


@pytest.mark.usefixtures("fixed_noise")
def test_prune_clusters_encodes_each_modality_a_sample_has():
    model = cmvae().eval()
    g = torch.Generator().manual_seed(0)
    pruned = model.prune_clusters(batch(), generator=g)
    assert set(pruned["scores"]) == {2, 3} and 2 <= len(pruned["kept"]) <= 3
    assert torch.isfinite(model.cluster_logits).sum() == len(pruned["kept"])
    again = cmvae().eval()  # the same data in two batches: the same codes and scores
    halves = [batch().index(slice(0, 2)), batch().index(slice(2, 3))]
    in_batches = again.prune_clusters(halves, generator=torch.Generator().manual_seed(0))
    assert in_batches["scores"] == pytest.approx(pruned["scores"])
