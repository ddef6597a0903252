"""mAAE and mWAE (multi-view-AE; MODELS.md): their losses against hand computations, the three
phases and their optimizers, the critic's clipping, and mWAE's MMD option."""

from __future__ import annotations

import math

import pytest
import torch

from core.data.builtin import builtin_modalities, load_builtin
from core.models import build_model
from core.training import Trainer, TrainerConfig
from tests.core.models.objective_helpers import batch, log_lik, observed, tiny, weight

PRIOR = torch.tensor([[0.4, -1.1], [0.0, 0.7], [-0.3, 0.2]])  # one prior draw per sample


def code(model, m: str, x: torch.Tensor) -> torch.Tensor:
    return model.encoders[m](x.unsqueeze(0))[0]


def score(model, z: torch.Tensor) -> torch.Tensor:
    return model.discriminator(z.unsqueeze(0))[0, 0]


def hand_losses(model, critic, generator) -> torch.Tensor:
    """Batch mean of rec + critic + generator, the critic and generator terms per sample given
    as functions of the sample's scores (prior draw, observed modalities' codes)."""
    b, total = batch(), []
    for i, have in enumerate(observed()):
        codes = {m: code(model, m, b.data[m][i]) for m in have}
        rec = (
            sum(-weight(t) * log_lik(model, t, codes[s], b.data[t][i]) for s in have for t in have)
            / len(have) ** 2
        )
        fake = [score(model, codes[m]) for m in have]
        real = score(model, PRIOR[i])
        total.append(rec + critic(real, fake) + generator(fake))
    return torch.stack(total).mean()


def test_maae_uses_the_bounded_gan_losses(monkeypatch):
    """critic −[log D(z_p) + Σ_m log(1 − D(z_m))] / (M_o + 1), generator −(1/M_o) Σ log D(z_m),
    D = sigmoid(score)."""
    model = tiny("maae", discriminator={"kind": "mlp", "hidden": [3]})
    monkeypatch.setattr(model, "prior_codes", lambda like: PRIOR)
    d = torch.sigmoid

    def critic(real, fake):
        return -(torch.log(d(real)) + sum(torch.log(1 - d(f)) for f in fake)) / (len(fake) + 1)

    def generator(fake):
        return -sum(torch.log(d(f)) for f in fake) / len(fake)

    expected = hand_losses(model, critic, generator)
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


def test_mwae_critic_uses_raw_scores(monkeypatch):
    """critic [−D(z_p) + Σ_m D(z_m)] / (M_o + 1), generator −(1/M_o) Σ_m D(z_m)."""
    model = tiny("mwae", discriminator={"kind": "mlp", "hidden": [3]})
    monkeypatch.setattr(model, "prior_codes", lambda like: PRIOR)
    expected = hand_losses(
        model,
        lambda real, fake: (-real + sum(fake)) / (len(fake) + 1),
        lambda fake: -sum(fake) / len(fake),
    )
    torch.testing.assert_close(model(batch()).loss, expected, rtol=1e-5, atol=1e-5)


def test_mwae_mmd_is_the_unbiased_imq_estimate(monkeypatch):
    """penalty mmd: rec + λ (1/M) Σ_m MMD²(codes of m, prior draws) over the samples observing
    m (a: samples 0 and 1, b: samples 0 and 2)."""
    lam = 1.7
    model = tiny("mwae", penalty="mmd", mmd_weight=lam)
    assert model.discriminator is None
    draws = torch.tensor([[0.5, -0.2], [-1.0, 0.3]])
    monkeypatch.setattr(torch, "randn_like", lambda z: draws)
    b = batch()

    def k(u, v):
        return sum(s * 4 / (s * 4 + ((u - v) ** 2).sum()) for s in (0.1, 0.2, 0.5, 1, 2, 5, 10))

    def mmd(x, y):  # unbiased, two samples each
        within = k(x[0], x[1]) + k(x[1], x[0]) + k(y[0], y[1]) + k(y[1], y[0])
        return within / 2 - 2 * sum(k(x[i], y[j]) for i in (0, 1) for j in (0, 1)) / 4

    penalty = sum(
        mmd(torch.stack([code(model, m, b.data[m][i]) for i in rows]), draws)
        for m, rows in (("a", (0, 1)), ("b", (0, 2)))
    )
    rec = []
    for i, have in enumerate(observed()):
        codes = {m: code(model, m, b.data[m][i]) for m in have}
        terms = [-weight(t) * log_lik(model, t, codes[s], b.data[t][i]) for s in have for t in have]
        rec.append(sum(terms) / len(have) ** 2)
    expected = torch.stack(rec).mean() + lam * penalty / 2
    torch.testing.assert_close(model(b).loss, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("model_type", ["maae", "mwae"])
def test_three_phases_train_with_their_own_optimizers(model_type, tmp_path):
    torch.manual_seed(0)
    net = {"kind": "mlp", "hidden": [16]}
    config = {"model_type": model_type, "modalities": builtin_modalities("digits"),
              "latent_dim": 4, "encoder": net, "decoder": net, "discriminator": net,
              "discriminator_learning_rate": 5e-4}  # fmt: skip
    model = build_model(config)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    data = load_builtin("digits", "train").subset(torch.arange(64))
    trainer = Trainer(model, data, None, TrainerConfig(epochs=1, batch_size=32, seed=0))
    result = trainer.fit()
    optimizers = trainer.optimizers.optimizers
    assert sorted(optimizers) == ["autoencoder", "discriminator", "generator"]
    assert optimizers["discriminator"].param_groups[0]["lr"] == 5e-4
    generator = {id(p) for g in optimizers["generator"].param_groups for p in g["params"]}
    assert generator == {id(p) for p in model.encoders.parameters()}
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert {"rec", "critic", "generator"} <= set(result.train_metrics)
    if model_type == "mwae":
        clip = model.config.clip_value
        assert all(p.abs().max() <= clip for p in model.discriminator.parameters())
    assert math.isfinite(result.train_metrics["loss"])
