"""MHVAE's objective against a hand computation (every subset, level by level), its per-level
PoE with the level's prior at inference, and its options (Dorent et al. 2023; MODELS.md)."""

from __future__ import annotations

import pytest
import torch

from core.models.latents import level_space
from tests.core.models.objective_helpers import (
    LINEAR,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    kl_normal,
    kl_standard,
    log_lik,
    observed,
    poe,
    tiny,
    weight,
)

F = 3
OPTIONS = {"n_latent": 2, "level_dims": [3], "feature_dim": F, "block_network": LINEAR}


def mhvae(**options):
    return tiny("mhvae", **{**OPTIONS, **options})


def gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    d = out.shape[-1] // 2
    return out[:d], torch.exp(0.5 * out[d:])


def skips_and_top(model, m: str, x: torch.Tensor):
    d1 = model.encoders[m](x.unsqueeze(0))[0]
    return d1, gaussian(model.bottom_up[m][-1](d1.unsqueeze(0))[0])


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("warmup, a_t", [(0, 1.0), (4, 0.25)])
def test_objective_averages_the_hierarchical_elbo_over_the_subsets_a_sample_has(warmup, a_t):
    beta = 0.8
    model = mhvae(beta=beta, warmup=warmup)
    model.set_epoch(1)  # a(t) = epoch / warmup with a warmup
    b = batch()
    subsets = [["a"], ["b"], ["a", "b"]]
    losses = []
    for i, have in enumerate(observed()):
        enc = {m: skips_and_top(model, m, b.data[m][i]) for m in have}
        per_subset = []
        for s in [s for s in subsets if set(s) <= set(have)]:
            mu_t, s_t = poe([enc[m][1] for m in s], prior=True)
            z_top = mu_t + s_t * eps(0)
            h = model.top_down[0](z_top.unsqueeze(0))[0]
            prior = gaussian(model.prior_blocks[0](h.unsqueeze(0))[0])
            block = model.posterior_blocks[0]
            experts = [gaussian(block(torch.cat([h, enc[m][0]]).unsqueeze(0))[0]) for m in s]
            mu_1, s_1 = poe([prior, *experts], prior=False)
            z_1 = mu_1 + s_1 * eps(0)
            rec = sum(weight(m) * log_lik(model, m, z_1, b.data[m][i]) for m in have)
            kl = kl_standard(mu_t, s_t) + kl_normal(mu_1, s_1, *prior)
            per_subset.append(-rec + beta * a_t * kl)
        losses.append(torch.stack(per_subset).mean())
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_encoding_joins_the_given_experts_and_each_levels_prior():
    """Given a alone: the top is the PoE of a's expert and N(0, I); the level below, the PoE of
    p(z_1 | z_top) and a's posterior block, at the drawn top code."""
    model = mhvae().eval()
    b = batch().index(slice(0, 1))
    latent = model.encode(b, given=["a"], n_samples=2, generator=torch.Generator().manual_seed(0))
    d1, top = skips_and_top(model, "a", b.data["a"][0])
    mu_t, s_t = poe([top], prior=True)
    q_top = latent.posteriors[level_space(0)]
    torch.testing.assert_close(q_top.loc[0], mu_t)
    torch.testing.assert_close(q_top.scale[0], s_t)
    z_top = latent.codes[level_space(0)][1, 0]  # the second draw
    h = model.top_down[0](z_top.unsqueeze(0))[0]
    prior = gaussian(model.prior_blocks[0](h.unsqueeze(0))[0])
    expert = gaussian(model.posterior_blocks[0](torch.cat([h, d1]).unsqueeze(0))[0])
    mu_1, s_1 = poe([prior, expert], prior=False)
    q_1 = latent.posteriors[level_space(1)]
    torch.testing.assert_close(q_1.loc[1, 0], mu_1)
    torch.testing.assert_close(q_1.scale[1, 0], s_1)


def test_levels_and_sizes_are_validated():
    with pytest.raises(ValueError, match="level_dims: 1 positive sizes"):
        mhvae(level_dims=[2, 3])
    with pytest.raises(ValueError, match="n_latent"):
        mhvae(n_latent=1, level_dims=None)
    many = [{"name": f"m{i}", "shape": [1]} for i in range(11)]
    with pytest.raises(ValueError, match="at most 10"):
        mhvae(modalities=many)


def test_three_levels_decode_from_the_bottom_and_sample_top_down():
    model = mhvae(n_latent=3, level_dims=[2, 3]).eval()
    assert [s for s, space in model.latent_spaces.items() if space.conditional] == [
        level_space(1),
        level_space(2),
    ]
    assert model.decoder_spaces["a"] == (level_space(2),)
    samples = model.sample(4, generator=torch.Generator().manual_seed(0))
    assert samples["a"].shape == (4, 3) and samples["b"].shape == (4, 4)


@pytest.mark.parametrize("shape", [[1, 28, 28], [3, 32, 32], [3, 64, 64]])
def test_default_networks_serve_28_32_and_64_pixel_images(shape):
    from core.data.batch import Batch
    from core.models import build_model

    config = {"model_type": "mhvae", "latent_dim": 4, "feature_dim": 16,
              "encoder": {"kind": "conv"}, "decoder": {"kind": "conv"},
              "modalities": [
                  {"name": "image", "shape": shape, "likelihood": {"kind": "laplace"}},
                  {"name": "label", "shape": [10], "encoder": {"kind": "mlp"},
                   "decoder": {"kind": "mlp"}, "likelihood": {"kind": "categorical"}},
              ]}  # fmt: skip
    model = build_model(config)
    x = {"image": torch.rand(2, *shape), "label": torch.eye(10)[[1, 2]]}
    loss = model(Batch.full(x)).loss
    loss.backward()
    assert torch.isfinite(loss)
    generated = model.eval().generate(Batch.full(x), given=["label"], targets=["image"])
    assert generated["image"].shape == (1, 2, *shape)
