"""CMVAE's objective against a hand computation, and its clusters (Palumbo et al. 2024;
MODELS.md)."""

from __future__ import annotations

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


def test_pruning_keeps_the_effective_number_of_clusters_the_data_uses():
    """Two clusters hold all the data (equal mass): exp(H) = 2, so the third is pruned and
    never assigned again."""
    model = cmvae().eval()
    with torch.no_grad():
        model.cluster_means.copy_(torch.tensor([[30.0, 30.0], [-30.0, -30.0], [0.0, 0.0]]))
    far = torch.tensor([[30.0, 30.0], [-30.0, -30.0]])
    latent = torch.cat([far, far]).unsqueeze(0)  # 4 samples, two at each far cluster

    def assign(batch, given=None, n_samples=10, generator=None):
        probs = model.cluster_posterior(latent).exp().mean(1).transpose(0, 1)
        return probs.argmax(-1), probs

    model.predict_clusters = assign  # the codes, not the encoders, are what this pins
    assert model.prune_clusters(batch()) == [0, 1]
    assert torch.isinf(model.cluster_logits[2]) and torch.isfinite(model.cluster_logits[:2]).all()
    u = torch.zeros(1, 1, D)  # at the pruned cluster's mean
    assert model.cluster_posterior(u)[2].exp().item() == 0.0
    assert torch.isfinite(model.train()(batch()).loss)  # training may go on after pruning
