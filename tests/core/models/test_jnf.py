"""JNF's two stages against hand computations, its subset posterior (the product of flow
posteriors over the prior, sampled by HMC) against closed forms, and its request cost
(Senellart et al. 2023; MODELS.md)."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.distributions import Normal

from core.data.batch import Batch
from core.models import build_model
from tests.core.models.objective_helpers import (
    LINEAR,
    MODALITIES,
    D,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    log_lik,
    observed,
    tiny,
    weight,
)
from tests.core.models.test_telbo import JOINT, joint_expert

FLOWS = {"flow_hidden": [8], "flow_transforms": 2}
THREE = [*MODALITIES, {"name": "c", "shape": [2]}]


def flow_log_q(model, m: str, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log q_m(z | x_m) = log N(f_m(z); μ_m, σ_m) + log|det ∂f_m/∂z| (encoder and flow are the
    model's networks; the density is written out here)."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    mu, s = out[:D], torch.exp(0.5 * out[D:])
    u, ladj = model.flows[m].transform().call_and_ladj(z)
    return Normal(mu, s).log_prob(u).sum(-1) + ladj


def three_modality_jnf(identity_flows: bool = False, **options):
    config = {"model_type": "jnf", "modalities": THREE, "latent_dim": D, "encoder": LINEAR,
              "decoder": LINEAR, **JOINT, **FLOWS, **options}  # fmt: skip
    torch.manual_seed(3)
    model = build_model(config).eval()
    if identity_flows:  # zero output layers: shift 0, log-scale 0
        with torch.no_grad():
            for flow in model.flows.values():
                for t in flow.transform.transforms:
                    last = [layer for layer in t.hyper if isinstance(layer, nn.Linear)][-1]
                    last.weight.zero_()
                    last.bias.zero_()
    return model


def three_modality_batch() -> Batch:
    """Sample 0 given every modality, 1 given a and c (a product), 2 given a alone."""
    x = {"a": torch.randn(3, 3), "b": torch.eye(4)[[1, 2, 3]], "c": torch.randn(3, 2)}
    masks = {"a": torch.tensor([True, True, True]), "b": torch.tensor([True, False, False]),
             "c": torch.tensor([True, True, False])}  # fmt: skip
    return Batch(x, masks)


@pytest.mark.usefixtures("fixed_noise")
def test_stage_one_is_the_joint_elbo_of_complete_samples():
    model = tiny("jnf", beta=1.4, **JOINT, **FLOWS)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        if have != ["a", "b"]:
            losses.append(torch.tensor(0.0))
            continue
        mu, s = joint_expert(model, {m: b.data[m][i] for m in have})
        z = mu + s * eps(0)
        rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in have)
        losses.append(-rec + 1.4 * kl_standard(mu, s))
    assert model.stage == "joint"
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_stage_two_fits_each_flow_posterior_to_the_joint_posterior_draws():
    model = tiny("jnf", **JOINT, **FLOWS)
    model.set_stage("flows")
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        if have != ["a", "b"]:
            losses.append(torch.tensor(0.0))
            continue
        mu, s = joint_expert(model, {m: b.data[m][i] for m in have})
        z = mu + s * eps(0)
        losses.append(-sum(flow_log_q(model, m, z, b.data[m][i]) for m in have))
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_the_flow_maps_follow_their_networks_as_they_train_and_when_copied():
    """Each f_m is built once (`flow_maps`); it applies the flow's current networks, and a
    copied model's maps apply the copy's."""
    model = tiny("jnf", **JOINT, **FLOWS)
    copied = copy.deepcopy(model)
    with torch.no_grad():
        for p in copied.flows.parameters():
            p.add_(0.5 * torch.randn_like(p))  # a trained copy: every flow weight moved
    z = torch.randn(5, D)
    for m in model.names:
        for net in (model, copied):
            u, ladj = net.flow_maps[m].call_and_ladj(z)
            fresh_u, fresh_ladj = net.flows[m].transform().call_and_ladj(z)
            torch.testing.assert_close(u, fresh_u, rtol=0, atol=0)
            torch.testing.assert_close(ladj, fresh_ladj, rtol=0, atol=0)
        assert not torch.allclose(model.flow_maps[m](z), copied.flow_maps[m](z))


def test_each_stage_trains_its_own_parameters():
    model = tiny("jnf", **JOINT, **FLOWS)
    by_stage = {s.name: {id(p) for p in s.parameters(model)} for s in model.stages}
    unimodal = {id(p) for p in [*model.encoders.parameters(), *model.flows.parameters()]}
    assert by_stage["flows"] == unimodal
    assert by_stage["joint"] == {id(p) for p in model.parameters()} - unimodal


def test_the_posterior_is_joint_flow_or_product_by_what_each_sample_is_given():
    model = three_modality_jnf()
    b = three_modality_batch()
    q = model.posterior(b, b.mask_matrix(model.names), model.unimodal_experts(b).shared)
    z = torch.randn(5, 3, D)
    log_q = q.log_prob(z)
    joint_mu, joint_s = joint_expert_three(model, b, 0)
    torch.testing.assert_close(log_q[:, 0], Normal(joint_mu, joint_s).log_prob(z[:, 0]).sum(-1))
    alone = flow_log_q(model, "a", z[:, 2], b.data["a"][2])
    torch.testing.assert_close(log_q[:, 2], alone)
    prior = Normal(0.0, 1.0).log_prob(z[:, 1]).sum(-1)
    product = flow_log_q(model, "a", z[:, 1], b.data["a"][1]) + flow_log_q(
        model, "c", z[:, 1], b.data["c"][1]
    )
    torch.testing.assert_close(q.log_target(z)[:, 1], product - prior)  # Π q_m / p^{|S|−1}


def test_the_density_of_complete_samples_runs_no_flow(monkeypatch):
    """The joint NLL scores K draws of complete samples: their flows' densities (a network
    pass per draw) are not computed, only the joint Gaussian's."""
    model = three_modality_jnf()
    b = three_modality_batch()
    complete = Batch({m: x[:1] for m, x in b.data.items()}, {m: k[:1] for m, k in b.masks.items()})
    q = model.posterior(
        complete, complete.mask_matrix(model.names), model.unimodal_experts(complete).shared
    )
    z = torch.randn(5, 1, D)
    expected = q.log_prob(z)

    def no_flow(*args, **kwargs):
        raise AssertionError("a flow's density was computed")

    for flow in q.flows:
        monkeypatch.setattr(flow, "log_prob", no_flow)
    torch.testing.assert_close(q.log_prob(z), expected)
    joint_mu, joint_s = joint_expert_three(model, b, 0)
    torch.testing.assert_close(expected[:, 0], Normal(joint_mu, joint_s).log_prob(z[:, 0]).sum(-1))


def joint_expert_three(model, b: Batch, i: int):
    feats = torch.cat([model.joint_features[m](b.data[m][i : i + 1])[0] for m in model.names])
    out = model.joint_head(feats.unsqueeze(0))[0]
    return out[:D], torch.exp(0.5 * out[D:])


def test_the_subset_posterior_density_integrates_to_one():
    """Its constant is importance-sampled: on a grid over the plane, the density sums to 1
    (within the estimate's error at 20,000 draws)."""
    model = three_modality_jnf(normaliser_draws=20_000)
    b = three_modality_batch().index(slice(1, 2))  # given a and c
    q = model.posterior(b, b.mask_matrix(model.names), model.unimodal_experts(b).shared)
    mean = q.rsample(64, torch.Generator().manual_seed(0)).mean((0, 1))
    axis = torch.linspace(-8, 8, 401)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).view(-1, 1, D) + mean
    with torch.no_grad():
        mass = q.log_prob(grid).exp().sum() * (axis[1] - axis[0]) ** 2
    assert mass.item() == pytest.approx(1.0, abs=0.03)


def test_hmc_draws_follow_the_product_posterior():
    """Identity flows make each q_m Gaussian, so Π q_m / p is Gaussian: precision
    Σ 1/σ_m² − 1, mean Σ (μ_m/σ_m²) / precision. Two thousand chains match its moments."""
    model = three_modality_jnf(identity_flows=True, mcmc_steps=40, n_lf=5, eps_lf=0.15)
    b = three_modality_batch().index(slice(1, 2))
    experts = model.unimodal_experts(b).shared
    q = model.posterior(b, b.mask_matrix(model.names), experts)
    draws = q.rsample(2000, torch.Generator().manual_seed(0))[:, 0]
    given = [0, 2]  # a and c
    precision = sum(1 / experts.scale[i, 0] ** 2 for i in given) - 1
    mean = sum(experts.loc[i, 0] / experts.scale[i, 0] ** 2 for i in given) / precision
    torch.testing.assert_close(draws.mean(0), mean, atol=0.08, rtol=0)
    torch.testing.assert_close(draws.std(0), precision.rsqrt(), atol=0.08, rtol=0.1)


def test_hmc_draws_are_deterministic_with_a_generator_and_each_sample_keeps_its_own():
    model = three_modality_jnf(mcmc_steps=3, n_lf=2)
    b = three_modality_batch()

    def draws(seed: int) -> torch.Tensor:
        return model.encode(b, n_samples=4, generator=torch.Generator().manual_seed(seed)).z

    assert torch.equal(draws(0), draws(0)) and not torch.equal(draws(0)[:, 1], draws(1)[:, 1])
    # in inference mode, as the service runs it, HMC still gets its gradients: the same draws
    torch.testing.assert_close(inference_mode_draws(model, b), draws(0))
    from core.models.distributions import Noise

    noise = Noise.draw(4, 3, D, "normal", torch.Generator().manual_seed(5))
    together = model.encode(b, noise={"shared": noise}).z[:, 1]
    alone = model.encode(b.index(slice(1, 2)), noise={"shared": noise.rows(slice(1, 2))}).z
    torch.testing.assert_close(together, alone[:, 0])


def inference_mode_draws(model, b: Batch) -> torch.Tensor:
    with torch.inference_mode():
        return model.encode(b, n_samples=4, generator=torch.Generator().manual_seed(0)).z


def test_inference_from_a_subset_counts_its_monte_carlo_steps_in_the_cost():
    model = three_modality_jnf(mcmc_steps=7, n_lf=2)
    assert model.inference_passes(["a"]) == 1
    assert model.inference_passes(["a", "b", "c"]) == 7 * 3  # rows may hold any two of them
    assert tiny("jnf", **JOINT, **FLOWS).inference_passes(["a", "b"]) == 1  # M = 2: no subsets
    assert math.isfinite(model.log_likelihood(three_modality_batch(), k=3).sum().item())
