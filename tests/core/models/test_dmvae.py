"""DMVAE's objective against a hand computation (Lee & Pavlovic 2021; MultiVae; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from core.data.batch import Batch
from core.models.distributions import Diagonal
from tests.core.models.objective_helpers import (
    batch,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    log_lik,
    observed,
    poe,
    private_expert,
    tiny,
    weight,
)

PRIVATE = {"a": 2, "b": 1}


def hand_loss(model, joint, beta: float, betas: dict[str, float]) -> torch.Tensor:
    """Terms t = joint (`joint(experts)`), then each observed modality's expert alone; every
    term decodes each observed x_k from [z_t, w_k], w_k drawn afresh per term (draw t: ε_t)."""
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        private = {m: private_expert(model, m, b.data[m][i], PRIVATE[m]) for m in have}
        terms = [(0, joint(experts))]
        terms += [(1 + ["a", "b"].index(m), experts[m]) for m in have]
        kl_private = sum(betas[m] * kl_standard(*private[m]) for m in have)
        loss = 0.0
        for t, (mu, s) in terms:
            z = mu + s * eps(0)
            rec = 0.0
            for k in have:
                w = private[k][0] + private[k][1] * eps(t)
                rec = rec + weight(k) * log_lik(model, k, torch.cat([z, w]), b.data[k][i])
            loss = loss - rec + beta * kl_standard(mu, s) + kl_private
        losses.append(loss)
    return torch.stack(losses).mean()


@pytest.mark.usefixtures("fixed_noise")
def test_loss_is_the_joint_elbo_plus_one_cross_elbo_per_observed_modality():
    """The joint term's posterior: the PoE of the sample's experts and the prior."""
    model = tiny("dmvae", beta=1.3, modalities_specific_dim=PRIVATE,
                 modalities_specific_betas={"a": 0.4})  # fmt: skip
    expected = hand_loss(model, lambda e: poe(list(e.values()), prior=True), 1.3,
                         {"a": 0.4, "b": 1.0})  # fmt: skip
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_weighted_dmvae_replaces_the_joint_poe_by_the_generalised_one():
    """The same ELBOs; the joint posterior: precision Σ_m w_m/σ_m², no prior expert."""
    model = tiny("weighted_dmvae", beta=0.9, modalities_specific_dim=PRIVATE)
    with torch.no_grad():
        model.expert_weights.copy_(torch.tensor([[0.3, 1.0], [0.6, 0.2]]))
    w = {"a": torch.tensor([0.3, 1.0]), "b": torch.tensor([0.6, 0.2])}

    def generalised(experts):
        precision = sum(w[m] / s**2 for m, (_, s) in experts.items())
        mean = sum(w[m] * mu / s**2 for m, (mu, s) in experts.items()) / precision
        return mean, precision.rsqrt()

    expected = hand_loss(model, generalised, 0.9, {"a": 1.0, "b": 1.0})
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


def test_one_given_modality_is_encoded_by_its_expert_alone_and_more_with_the_prior():
    model = tiny("dmvae", modalities_specific_dim=PRIVATE)
    loc = torch.tensor([[[0.5, -1.0], [0.2, 0.1]], [[1.5, 0.3], [-0.7, 0.4]]])  # [M, B, D]
    scale = torch.full_like(loc, 0.5)
    mask = torch.tensor([[True, True], [False, True]])  # sample 0: a only; sample 1: both
    empty = Batch({}, {})
    q = model.posterior(empty, mask, Diagonal(loc, scale))
    torch.testing.assert_close(q.loc[0], loc[0, 0])
    torch.testing.assert_close(q.scale[0], scale[0, 0])
    both = [(loc[0, 1], scale[0, 1]), (loc[1, 1], scale[1, 1])]
    mu, s = poe(both, prior=True)
    torch.testing.assert_close(q.loc[1], mu)
    torch.testing.assert_close(q.scale[1], s)


def test_private_sizes_must_cover_every_modality():
    with pytest.raises(ValueError, match="modalities_specific_dim"):
        tiny("dmvae", modalities_specific_dim={"a": 2})
    with pytest.raises(ValueError, match="modalities_specific_betas"):
        tiny("dmvae", modalities_specific_betas={"nope": 1.0})
