"""The multi-view AE's objective against a hand computation (multi-view-AE's `AE`; MODELS.md),
and what a deterministic model refuses: a likelihood, and unconditional samples without a
fitted sampler."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import D, batch, log_lik, observed, tiny, weight


def code(model, m: str, x: torch.Tensor) -> torch.Tensor:
    return model.encoders[m](x.unsqueeze(0))[0]


def test_loss_decodes_every_observed_modality_from_every_observed_code():
    """loss = (1/M_o²) Σ_j Σ_i −λ_i log p(x_i | z_j) over the sample's observed modalities."""
    model = tiny("ae")
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        total = sum(
            -weight(t) * log_lik(model, t, code(model, s, b.data[s][i]), b.data[t][i])
            for s in have
            for t in have
        )
        losses.append(total / len(have) ** 2)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_codes_are_deterministic_and_several_modalities_average_theirs():
    model = tiny("ae").eval()
    b = batch()
    latent = model.encode(b, n_samples=3)
    assert latent.z.shape == (3, 3, D) and torch.equal(latent.z[0], latent.z[2])
    assert torch.equal(latent.posterior.stddev, torch.zeros(3, D))
    both = (code(model, "a", b.data["a"][0]) + code(model, "b", b.data["b"][0])) / 2
    torch.testing.assert_close(latent.z[0, 0], both)
    torch.testing.assert_close(latent.z[0, 1], code(model, "a", b.data["a"][1]))


def test_no_likelihood_and_no_prior_samples_each_said_clearly():
    model = tiny("ae").eval()
    with pytest.raises(ValueError, match=r"ae model is deterministic.*no likelihood"):
        model.log_likelihood(batch(), k=4)
    with pytest.raises(ValueError, match="no prior over its latent codes: fit a latent sampler"):
        model.sample(2)
