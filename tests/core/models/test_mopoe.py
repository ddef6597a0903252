"""MoPoE-VAE's objective against a hand computation (Sutter et al. 2021; MODELS.md)."""

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

SUBSETS = [["a"], ["b"], ["a", "b"]]  # the mixture's components, in the model's order


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("private", [None, 1])
def test_loss_is_rec_from_one_subset_plus_the_mean_kl_of_the_valid_subsets(private):
    """−rec(z from a subset posterior) + β·mean_{s ⊆ observed} KL(q_s ‖ p) + β_style Σ_m
    KL(q(w_m|x_m) ‖ p); q_s a PoE of s's experts, with the prior expert for the full set only;
    the first valid subset is the one drawn (fixed by the test)."""
    beta, beta_style = 1.3, 0.6
    options = {"beta": beta, "beta_style": beta_style, "modalities_specific_dim": private}
    options["mixture_selection"] = "random"  # draws the component the fixture fixes
    model = tiny("mopoe", **options)
    b = batch()
    losses = []
    for i, have in enumerate(observed()):
        valid = [s for s in SUBSETS if set(s) <= set(have)]
        shared = {m: expert(model, m, b.data[m][i]) for m in have}
        posts = [poe([shared[m] for m in s], prior=len(s) == 2) for s in valid]
        kl = torch.stack([kl_standard(mu, s) for mu, s in posts]).mean()
        mu, s = posts[0]
        z = mu + s * eps(0)
        rec, kl_style = 0.0, 0.0
        for m in have:
            code = z
            if private:
                out = model.encoders[m](b.data[m][i].unsqueeze(0))[0]
                w_mu, w_s = out[4:5], torch.exp(0.5 * out[5:6])
                code = torch.cat([z, w_mu + w_s * eps(0)])
                kl_style = kl_style + kl_standard(w_mu, w_s)
            rec = rec + weight(m) * log_lik(model, m, code, b.data[m][i])
        losses.append(-rec + beta * kl + beta_style * kl_style)
    expected = torch.stack(losses).mean()
    torch.testing.assert_close(model(b).loss, expected, rtol=1e-5, atol=1e-5)
