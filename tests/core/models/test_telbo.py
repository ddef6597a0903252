"""TELBO's two stages against hand computations and any-subset inference (Vedantam et al. 2018);
its stage-2 resume is in test_multistage_resume.py."""

from __future__ import annotations

import pytest
import torch

from core.data.batch import Batch
from core.models import build_model
from core.models.distributions import Diagonal
from tests.core.models.objective_helpers import (
    LINEAR,
    MODALITIES,
    D,
    batch,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    log_lik,
    observed,
    poe,
    tiny,
    weight,
)

JOINT = {"joint_features": 3, "joint_encoder": {"kind": "mlp", "hidden": []}}


def joint_expert(model, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    feats = torch.cat([model.joint_features[m](x[m].unsqueeze(0))[0] for m in ("a", "b")])
    out = model.joint_head(feats.unsqueeze(0))[0]
    return out[:D], torch.exp(0.5 * out[D:])


@pytest.mark.usefixtures("fixed_noise")
def test_stage_one_is_the_lambda_weighted_joint_elbo_of_complete_samples():
    beta, lam = 1.3, {"a": 0.5, "b": 2.0}
    model = tiny("telbo", beta=beta, lambda_factors={"a": 0.5, "b": 2.0}, **JOINT)
    model.set_stage("joint")
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        if have != ["a", "b"]:
            losses.append(torch.tensor(0.0))  # the joint encoder needs every modality
            continue
        mu, s = joint_expert(model, {m: b.data[m][i] for m in have})
        z = mu + s * eps(0)
        rec = sum(lam[m] * weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        losses.append(-rec + beta * kl_standard(mu, s))
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_stage_two_is_the_gamma_weighted_unimodal_elbos_with_their_own_variances():
    beta, gamma = 0.7, {"a": 1.5, "b": 1.0}
    model = tiny("telbo", beta=beta, gamma_factors={"a": 1.5}, **JOINT)
    model.set_stage("unimodal")
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        loss = 0.0
        for m in have:
            mu, s = expert(model, m, b.data[m][i])
            rec = weight(m) * log_lik(model, m, mu + s * eps(0), b.data[m][i])
            loss = loss - gamma[m] * (rec - beta * kl_standard(mu, s))
        losses.append(loss)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_inference_from_any_subset_is_the_poe_of_its_experts_and_joint_when_complete():
    """Three modalities: a sample given all three uses the joint encoder; one given two of
    them (a subset MultiVae refuses) the PoE of those two experts."""
    modalities = [*MODALITIES, {"name": "c", "shape": [2]}]
    model = build_model({"model_type": "telbo", "modalities": modalities, "latent_dim": D,
                         "encoder": LINEAR, "decoder": LINEAR, **JOINT}).eval()  # fmt: skip
    x = {"a": torch.randn(2, 3), "b": torch.eye(4)[[1, 2]], "c": torch.randn(2, 2)}
    b = Batch(x, {m: torch.ones(2, dtype=torch.bool) for m in x})
    loc = torch.randn(3, 2, D)
    experts = Diagonal(loc, torch.rand(3, 2, D) + 0.5)
    mask = torch.tensor([[True, True], [True, True], [True, False]])  # sample 1: a and b only
    q = model.posterior(b, mask, experts)
    feats = torch.cat([model.joint_features[m](x[m][:1]) for m in ("a", "b", "c")], -1)
    out = model.joint_head(feats)[0]
    torch.testing.assert_close(q.loc[0], out[:D])
    pair = [(loc[i, 1], experts.scale[i, 1]) for i in (0, 1)]
    mu, s = poe(pair, prior=False)
    torch.testing.assert_close(q.loc[1], mu)
    torch.testing.assert_close(q.scale[1], s)
