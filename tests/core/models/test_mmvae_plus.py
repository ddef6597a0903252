"""MMVAE+'s objective against a hand computation (Palumbo et al. 2023; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    D,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    laplace_log_prob,
    log_lik,
    log_mean_exp,
    observed,
    tiny,
    weight,
)

K, P = 2, 2


def softmax_scale(raw: torch.Tensor) -> torch.Tensor:
    return torch.softmax(raw, -1) * raw.shape[-1] + 1e-6


def experts_of(model, m: str, x: torch.Tensor):
    """((loc, scale) shared, (loc, scale) private) of modality m, laplace_with_softmax."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    shared = (out[:D], softmax_scale(out[D : 2 * D]))
    private = (out[2 * D : 2 * D + P], softmax_scale(out[2 * D + P :]))
    return shared, private


def looser_bound_by_hand(model, beta: float, log_prior) -> torch.Tensor:
    """−mean_i mean_{m observed} log mean_k ω_k, ω = Σ_n λ_n log p(x_n | u, w̃_n) +
    β [log_prior(u, w_m) − log q_MoE(u|X) − log q(w_m|x_m)], draws k with noise ε_k, w̃_n = w_m
    for x_m itself and a draw of r_n for the others (laplace_with_softmax throughout)."""
    r_scale = {m: softmax_scale(model.modality_prior_raw[m].detach()) for m in ("a", "b")}
    b = batch()
    per_sample = []
    for i, have in enumerate(observed()):
        enc = {m: experts_of(model, m, b.data[m][i]) for m in have}
        estimates = []
        for m in have:
            (u_loc, u_scale), (w_loc, w_scale) = enc[m]
            values = []
            for k in range(K):
                u = u_loc + u_scale * eps(k)
                w = w_loc + w_scale * eps(k)
                rec = 0.0
                for n in have:
                    private = w if n == m else r_scale[n] * eps(k)
                    rec = rec + weight(n) * log_lik(model, n, torch.cat([u, private]), b.data[n][i])
                mixture = torch.logsumexp(
                    torch.stack([laplace_log_prob(u, *enc[j][0]) for j in have]), 0
                ) - torch.log(torch.tensor(float(len(have))))
                log_q = mixture + laplace_log_prob(w, w_loc, w_scale)
                values.append(rec + beta * (log_prior(u, w) - log_q))
            estimates.append(log_mean_exp(values))
        per_sample.append(torch.stack(estimates).mean())
    return -torch.stack(per_sample).mean()


@pytest.mark.usefixtures("fixed_noise")
def test_iwae_looser_bound_scores_shared_and_private_codes_with_cross_private_from_r():
    beta = 1.2
    model = tiny("mmvae_plus", K=K, loss="iwae_looser", beta=beta, modalities_specific_dim=P)
    with torch.no_grad():
        model.joint_prior_raw.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
        model.modality_prior_raw["a"].copy_(torch.tensor([0.4, -0.4]))
        model.modality_prior_raw["b"].copy_(torch.tensor([-0.1, 0.2]))
    p_scale = softmax_scale(model.joint_prior_raw.detach())

    def joint_prior(u, w):
        return laplace_log_prob(u, torch.zeros(D), p_scale[:D]) + laplace_log_prob(
            w, torch.zeros(P), p_scale[D:]
        )

    expected = looser_bound_by_hand(model, beta, joint_prior)
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_dreg_has_the_bound_s_value_and_differs_only_in_its_gradients():
    """The DReG surrogate Σ_k w̃_k log ω_k equals the IWAE bound's value only in expectation, so
    compare what must agree: the reported bound, and that gradients reach every encoder."""
    dreg = tiny("mmvae_plus", K=K, modalities_specific_dim=P)
    iwae = tiny("mmvae_plus", K=K, loss="iwae_looser", modalities_specific_dim=P)
    b = batch()
    out_dreg, out_iwae = dreg(b), iwae(b)
    torch.testing.assert_close(out_dreg.metrics["iwae_looser"], out_iwae.metrics["iwae_looser"])
    out_dreg.loss.backward()
    assert all(p.grad is not None for p in dreg.encoders.parameters())


def test_missing_private_codes_come_from_r_or_p_while_the_prior_is_p():
    single = tiny("mmvae_plus", modalities_specific_dim=P).eval()
    joint = tiny("mmvae_plus", modalities_specific_dim=P, reconstruction_option="joint_prior")
    with torch.no_grad():
        single.modality_prior_raw["b"].copy_(torch.tensor([2.0, -2.0]))
        joint.joint_prior_raw.copy_(torch.tensor([0.3, -0.2, 0.1, 0.5]))
    r_b = softmax_scale(torch.tensor([2.0, -2.0]))
    p_scale = softmax_scale(joint.joint_prior_raw.detach())
    torch.testing.assert_close(joint.prior("private/b").scale, p_scale[D:])
    torch.testing.assert_close(joint.prior().scale, p_scale[:D])
    p_single = softmax_scale(single.joint_prior_raw.detach())  # tiny() drew its raw scales
    torch.testing.assert_close(single.prior("private/b").scale, p_single[D:])
    # sample 1 has only `a`: its stand-in code for b comes from r_b, or from p's private part
    torch.testing.assert_close(single.encode(batch()).posteriors["private/b"].scale[1], r_b)
    torch.testing.assert_close(joint.eval().encode(batch()).posteriors["private/b"].scale[1],
                               p_scale[D:])  # fmt: skip


def test_likelihood_scores_private_codes_with_p_never_with_the_auxiliary_r():
    """log p(x) is the generative model's (p), so moving r_b changes no sample's estimate:
    observed private codes are scored with p, a stand-in code for a missing b integrates out."""
    model = tiny("mmvae_plus", modalities_specific_dim=P).eval()
    before = model.log_likelihood(batch(), k=7, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.modality_prior_raw["b"].copy_(torch.tensor([2.0, -2.0]))
    after = model.log_likelihood(batch(), k=7, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(after, before)
    assert torch.isfinite(before).all()
