"""mcVAE's objective against a hand computation (Antelmi et al. 2019; MODELS.md), dense and
sparse, and the sparse model's dropped dimensions."""

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
    tiny,
    weight,
)

K1, K2, K3 = 0.63576, 1.8732, 1.48695


def molchanov_kl(log_alpha: torch.Tensor) -> torch.Tensor:
    """−(k1 σ(k2 + k3 log α) − ½ log(1 + 1/α) − k1), summed over dimensions."""
    la = log_alpha.clamp(-8, 8)
    return -(K1 * torch.sigmoid(K2 + K3 * la) - 0.5 * torch.log1p(torch.exp(-la)) - K1).sum()


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("sparse", [False, True])
def test_loss_sums_the_kls_and_averages_every_cross_reconstruction(sparse):
    """loss = β Σ_j KL(q(z|x_j) ‖ p) − (1/M_o²) Σ_j Σ_i λ_i log p(x_i | z_j), z_j = μ_j + σ_j ε_0;
    sparse: σ_j = √α |μ_j| and the Molchanov approximation of each KL."""
    beta = 0.7
    model = tiny("mcvae", beta=beta, sparse=sparse)
    if sparse:
        with torch.no_grad():
            model.log_alpha.copy_(torch.tensor([-1.5, 9.0]))  # the second clamps at 8
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        total = torch.tensor(0.0)
        for j in have:
            mu, s = expert(model, j, b.data[j][i])
            if sparse:
                s = torch.exp(0.5 * model.log_alpha.detach()) * (mu.abs() + 1e-8)
                kl = molchanov_kl(2 * s.log() - 2 * torch.log(mu.abs() + 1e-8))
            else:
                kl = kl_standard(mu, s)
            z = mu + s * eps(0)
            rec = sum(weight(t) * log_lik(model, t, z, b.data[t][i]) for t in have)
            total = total + beta * kl - rec / len(have) ** 2
        losses.append(total)
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_inference_mixes_the_given_posteriors_and_its_mean_averages_them():
    model = tiny("mcvae").eval()
    b = batch()
    mean = model.encode(b, mean=True).z[0]
    both = (expert(model, "a", b.data["a"][0])[0] + expert(model, "b", b.data["b"][0])[0]) / 2
    torch.testing.assert_close(mean[0], both)
    torch.testing.assert_close(mean[2], expert(model, "b", b.data["b"][2])[0])


def test_sparse_threshold_zeroes_the_dropped_dimensions_and_reports_the_kept_ones():
    model = tiny("mcvae", sparse=True, threshold=0.5).eval()
    with torch.no_grad():
        model.log_alpha.copy_(torch.tensor([-2.0, 1.0]))  # rates 0.12 (kept), 0.73 (dropped)
    assert model.kept_dimensions() == [0]
    z = model.encode(batch(), n_samples=4).z
    assert torch.equal(z[..., 1], torch.zeros(4, 3)) and bool((z[..., 0] != 0).all())
    assert tiny("mcvae", sparse=True).kept_dimensions() is None
