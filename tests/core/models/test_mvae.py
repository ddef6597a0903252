"""MVAE's objective against a hand computation (Wu & Goodman 2018; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
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


def _mean_join(experts):
    mu = torch.stack([m for m, _ in experts]).mean(0)
    return mu, torch.exp(torch.stack([s.log() for _, s in experts]).mean(0))


def hand_loss(model, beta: float, join: str = "poe", prior: bool = True) -> torch.Tensor:
    """−mean_i Σ_T ELBO_T: T = the joint set and each modality alone; each term's posterior a
    PoE of the prior and the experts T has in sample i (or, options, a PoE without the prior,
    or their mean); terms with none of them skipped."""
    b = batch()
    total = []
    for i, have in enumerate(observed()):
        elbos = []
        for term in (["a", "b"], ["a"], ["b"]):
            used = [m for m in term if m in have]
            if not used:
                continue
            experts = [expert(model, m, b.data[m][i]) for m in used]
            mu, s = poe(experts, prior=prior) if join == "poe" else _mean_join(experts)
            z = mu + s * eps(0)
            rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in used)
            elbos.append(rec - beta * kl_standard(mu, s))
        total.append(-sum(elbos))
    return torch.stack(total).mean()


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(
    ("annealing", "epoch", "progress", "factor"),
    [
        ("per_step", 1, 0.0, 0.0),  # MultiVae's schedule: 0 at the very first step
        ("per_step", 3, 2.5, 0.25),  # halfway through epoch 3 of warmup 10
        ("per_step", 10, 9.5, 1.0),  # the whole of epoch `warmup` has the full weight
        ("per_step", 12, 11.0, 1.0),
        ("per_epoch", 3, 2.5, 0.3),  # the older option: epoch / warmup
    ],
)
def test_loss_is_the_sum_of_joint_and_unimodal_elbos_with_annealed_beta(
    annealing, epoch, progress, factor
):
    model = tiny("mvae", beta=2.0, warmup=10, annealing=annealing)
    model.set_epoch(epoch)
    model.set_progress(progress)
    got = model(batch()).loss
    torch.testing.assert_close(got, hand_loss(model, 2.0 * factor), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
def test_evaluation_is_not_annealed():
    model = tiny("mvae", beta=2.0, warmup=10).eval()
    model.set_epoch(1)
    torch.testing.assert_close(model(batch()).loss, hand_loss(model, 2.0), rtol=1e-5, atol=1e-5)


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(("join_type", "use_prior"), [("poe", False), ("mean", True)])
def test_the_joint_posterior_options_of_multi_view_ae(join_type, use_prior):
    model = tiny("mvae", beta=1.5, warmup=0, join_type=join_type, use_prior=use_prior)
    got = model(batch()).loss
    expected = hand_loss(model, 1.5, join=join_type, prior=use_prior)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def _sparse_kl_by_hand(mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    log_alpha = (2 * s.log() - 2 * torch.log(mu.abs() + 1e-8)).clamp(-8, 8)
    k1, k2, k3 = 0.63576, 1.8732, 1.48695
    neg = k1 * torch.sigmoid(k2 + k3 * log_alpha) - 0.5 * torch.log1p(torch.exp(-log_alpha)) - k1
    return -neg.sum()


@pytest.mark.usefixtures("fixed_noise")
def test_sparse_experts_have_variance_alpha_mu_squared_and_the_molchanov_kl():
    log_alpha = torch.tensor([0.4, -1.1])
    model = tiny("mvae", beta=1.2, warmup=0, sparse=True)
    with torch.no_grad():
        model.log_alpha.copy_(log_alpha)
    b = batch()
    total = []
    for i, have in enumerate(observed()):
        elbos = []
        for term in (["a", "b"], ["a"], ["b"]):
            used = [m for m in term if m in have]
            if not used:
                continue
            experts = []
            for m in used:
                mu, _ = expert(model, m, b.data[m][i])
                experts.append((mu, torch.exp(0.5 * log_alpha) * (mu.abs() + 1e-8)))
            mu, s = poe(experts, prior=True)
            z = mu + s * eps(0)
            rec = sum(weight(m) * log_lik(model, m, z, b.data[m][i]) for m in used)
            elbos.append(rec - 1.2 * _sparse_kl_by_hand(mu, s))
        total.append(-sum(elbos))
    torch.testing.assert_close(model(b).loss, torch.stack(total).mean(), rtol=1e-5, atol=1e-5)


def test_dimensions_past_the_dropout_threshold_are_zero_at_prediction():
    model = tiny("mvae", sparse=True, threshold=0.5).eval()
    with torch.no_grad():
        model.log_alpha.copy_(torch.tensor([2.0, -2.0]))  # rates 0.88 (dropped) and 0.12
    codes = model.encode(batch(), n_samples=3).codes["shared"]
    assert codes[..., 0].eq(0).all() and codes[..., 1].ne(0).all()
    with pytest.raises(ValueError, match="threshold"):
        tiny("mvae", threshold=0.5)


def _decode_every_term(self, z, batch, term_masks):
    """The reconstruction as it was computed before: every decoder on every term, masked."""
    rec = torch.zeros_like(z[..., 0])
    for m, lp in self.log_likelihoods(self.decoder_outputs(z), batch).items():
        rec = rec + lp * term_masks[:, self.index[m]].to(lp.dtype)
    return rec


@pytest.mark.parametrize("k", [0, 1, 4])
def test_a_decoder_decodes_only_the_terms_that_can_hold_its_modality(monkeypatch, k):
    """Three modalities, some missing: the joint term, each unimodal one and k sampled
    subsets (all 3 of size 2 when k = 4). Each decoder sees the joint term, its own unimodal
    term and the sampled ones, not the other modalities' unimodal terms; loss and gradients
    are those of decoding every term."""
    from tests.core.training.conftest import synthetic, tiny_mvae

    model, data = tiny_mvae(k=k).train(), synthetic(24).batch()
    rows: dict[str, list[int]] = {}
    for m, decoder in model.decoders.items():
        decoder.register_forward_hook(lambda mod, args, out, m=m: rows.setdefault(m, []).append(
            args[0].shape[0]))  # fmt: skip
    torch.manual_seed(7)
    loss = model(data).loss
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    sampled = min(k, 3)
    assert rows == {m: [(2 + sampled) * 24] for m in "abc"}
    monkeypatch.setattr(type(model), "_reconstruction", _decode_every_term)
    torch.manual_seed(7)
    expected = model(data).loss
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-6)
    for got, want in zip(
        grads,
        torch.autograd.grad(expected, list(model.parameters()), allow_unused=True),
        strict=True,
    ):
        if want is not None:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
