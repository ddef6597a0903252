"""DVCCA's objective against a hand computation (Wang et al. 2016; MODELS.md), with and without
private latents, and its inference from the encoded modality only."""

from __future__ import annotations

import pytest
import torch

from tests.core.models.objective_helpers import (
    D,
    batch,
    eps,
    expert,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    log_lik,
    observed,
    tiny,
    weight,
)


def private_of(model, m: str, x: torch.Tensor, encoded: str, size: int):
    """(μ, σ) of modality m's private latent: after the shared outputs on the encoded modality,
    the whole output elsewhere."""
    out = model.encoders[m](x.unsqueeze(0))[0]
    start = 2 * D if m == encoded else 0
    return out[start : start + size], torch.exp(0.5 * out[start + size : start + 2 * size])


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize(("encoded", "private"), [("a", None), ("b", 1)])
def test_loss_infers_z_from_the_encoded_modality_and_decodes_every_observed_one(encoded, private):
    """loss = β [KL(q(z|x_e)) + Σ_m KL(q(h_m|x_m))] − Σ_m λ_m log p(x_m | z, h_m), summed over
    the sample's observed modalities; a sample without x_e contributes 0 to the batch mean."""
    beta = 1.3
    model = tiny("dvcca", beta=beta, encoded_modality=encoded, modalities_specific_dim=private)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        if encoded not in have:
            losses.append(torch.tensor(0.0))
            continue
        mu, s = expert(model, encoded, b.data[encoded][i])
        z = mu + s * eps(0)
        kl, rec = kl_standard(mu, s), torch.tensor(0.0)
        for m in have:
            code = z
            if private:
                h_mu, h_s = private_of(model, m, b.data[m][i], encoded, private)
                code = torch.cat([z, h_mu + h_s * eps(0)])
                kl = kl + kl_standard(h_mu, h_s)
            rec = rec + weight(m) * log_lik(model, m, code, b.data[m][i])
        losses.append(beta * kl - rec)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_only_the_encoded_modality_has_a_shared_encoder_and_it_is_required():
    model = tiny("dvcca", encoded_modality="b").eval()
    assert list(model.encoders) == ["b"]
    assert model.required_inputs == ["b"]
    assert "['b'] not given" in model.generation_error(["a"], ["b"])
    assert model.generation_error(["b"], ["a"]) is None
    b = batch()
    z = model.encode(b.index(torch.tensor([0, 2])), given=["b"], mean=True).z[0]
    torch.testing.assert_close(z[1], expert(model, "b", b.data["b"][2])[0])
    with pytest.raises(ValueError, match="sample 1 is not given 'b'"):
        model.encode(b)


def test_encoded_modality_must_be_a_modality():
    with pytest.raises(ValueError, match="encoded_modality: 'c' is not one of"):
        tiny("dvcca", encoded_modality="c")
