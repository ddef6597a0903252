"""MoPoE-VAE's objective against a hand computation (Sutter et al. 2021; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from core.data.batch import Batch
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


def test_private_sizes_can_differ_per_modality_and_a_modality_can_have_none():
    model = tiny("mopoe", modalities_specific_dim={"a": 3})
    assert model.private_dims == {"a": 3, "b": 0}
    assert set(model.latent_spaces) == {"shared", "private/a"}
    assert model.decoder_spaces == {"a": ("shared", "private/a"), "b": ("shared",)}
    with pytest.raises(ValueError, match="modalities_specific_dim"):
        tiny("mopoe", modalities_specific_dim={"nope": 2})


def test_encoding_from_a_subset_is_the_mixture_over_its_subsets():
    """Given {a, b}: the mixture of PoE(a), PoE(b) and PoE(a, b, prior), equally weighted;
    given {a}: PoE(a) alone, the same component the full mixture holds."""
    model = tiny("mopoe").eval()
    b = batch()
    full = Batch({m: x[:1] for m, x in b.data.items()}, {m: k[:1] for m, k in b.masks.items()})
    latent = model.encode(full, n_samples=1)
    mixture = latent.posterior
    assert mixture.log_weights.exp()[0].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    a = {m: expert(model, m, full.data[m][0]) for m in ("a", "b")}
    expected = [poe([a["a"]], False), poe([a["b"]], False), poe(list(a.values()), True)]
    for c, (mu, s) in enumerate(expected):
        torch.testing.assert_close(mixture.components.loc[c, 0], mu)
        torch.testing.assert_close(mixture.components.scale[c, 0], s)
    only_a = model.encode(full, given=["a"], n_samples=1).posterior
    assert only_a.log_weights.exp()[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
