"""gPoE's objective against a hand computation, and its weights kept in [0, 1]
(multi-view-AE's weighted_mVAE; Cao & Fleet 2014; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from core.models import build_model
from core.models.optimization import MAIN
from tests.core.models.objective_helpers import (
    MODALITIES,
    D,
    batch,
    decode_with_private,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    observed,
    tiny,
)


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("private", [None, 1])
def test_loss_uses_the_weighted_product_and_averages_reconstructions_over_modalities(private):
    """q(z|X): precision Σ_m w_m/σ_m², mean Σ_m w_m μ_m/σ_m² / precision (no prior expert);
    loss = β KL(q ‖ p) − (1/M) Σ_m log p(x_m|z), M the sample's modality count; with private
    latents x_m is decoded from [z, w_m] and β (1/M) Σ_m KL(q(w_m|x_m) ‖ p) is added."""
    beta = 1.4
    model = tiny("gpoe", beta=beta, modalities_specific_dim=private)
    with torch.no_grad():  # weights off their 1/M start, one of them clamped at use
        model.expert_weights.copy_(torch.tensor([[0.2, 0.9], [0.7, 1.6]]))
    w = {"a": torch.tensor([0.2, 0.9]), "b": torch.tensor([0.7, 1.0])}
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        experts = {m: expert(model, m, b.data[m][i]) for m in have}
        precision = sum(w[m] / experts[m][1] ** 2 for m in have)
        mu = sum(w[m] * experts[m][0] / experts[m][1] ** 2 for m in have) / precision
        s = precision.rsqrt()
        z = mu + s * eps(0)
        rec, kl_private = decode_with_private(model, b, i, have, z, private)
        n = len(have)
        losses.append(beta * (kl_standard(mu, s) + kl_private / n) - rec / n)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


class _SGD:
    """The Trainer's optimizer handle, reduced to one plain SGD step with a large rate."""

    def __init__(self, model, lr: float) -> None:
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    @property
    def names(self) -> list[str]:
        return [MAIN]

    def step(self, loss, name: str = MAIN, reevaluate=None) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()


def test_the_expert_weights_start_at_one_over_m_and_are_projected_into_the_unit_interval():
    model = tiny("gpoe")
    assert model.expert_weights.shape == (2, D)
    with torch.no_grad():
        model.expert_weights.fill_(0.5)
    start = model.expert_weights.detach().clone()
    model.training_step(batch(), _SGD(model, lr=50.0))  # a step far past the bounds
    after = model.expert_weights.detach()
    assert not torch.equal(after, start)
    assert after.min() >= 0.0 and after.max() <= 1.0
    fresh = build_model({"model_type": "gpoe", "modalities": MODALITIES, "latent_dim": 3})
    assert fresh.expert_weights.shape == (2, 3) and fresh.expert_weights.eq(0.5).all()  # 1/M
