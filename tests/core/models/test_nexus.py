"""Nexus's objective against a hand computation, its forced perceptual dropout, its two-level
generative model and its tracked bottom scales (Vasco et al. 2022; MODELS.md)."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from core.models.latents import SHARED, private_space
from tests.core.models.objective_helpers import (
    LINEAR,
    D,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    kl_standard,
    observed,
    tiny,
    weight,
)

SIZES = {"a": 2, "b": 3}
OPTIONS = {"modalities_specific_dim": SIZES, "top_network": LINEAR, "msg_dim": 3, "warmup": 4}


def nexus(**options):
    return tiny("nexus", **{**OPTIONS, **options})


def bottom(model, m: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = model.encoders[m](x.unsqueeze(0))[0]
    p = SIZES[m]
    return out[:p], torch.exp(0.5 * out[p : 2 * p])


def bottom_log_lik(model, m: str, z_m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    out = model.decoders[m](z_m.unsqueeze(0))[0]
    if m == "a":
        return Normal(out, 0.5).log_prob(x).sum()
    return torch.log_softmax(out, -1)[x.argmax()]


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("adapt", [False, True])
def test_objective_is_the_bottom_elbos_plus_the_top_elbo_over_the_messages(adapt):
    betas, gammas, top_beta = {"a": 0.5, "b": 1.5}, {"a": 2.0, "b": 0.7}, 1.3
    model = nexus(bottom_betas=betas, gammas=gammas, top_beta=top_beta,
                  adapt_top_decoder_variance=["a"] if adapt else None)  # fmt: skip
    model.set_epoch(1)
    a_t = 1 / 4  # a(t) = epoch / warmup
    b = batch()
    codes, residuals, losses = {}, {"a": [], "b": []}, []
    for i, have in enumerate(observed()):
        loss, msgs = torch.tensor(0.0), []
        for m in have:
            mu, s = bottom(model, m, b.data[m][i])
            z_m = mu + s * eps(0)
            codes[i, m] = z_m
            rec = weight(m) * bottom_log_lik(model, m, z_m, b.data[m][i])
            loss = loss - rec + betas[m] * a_t * kl_standard(mu, s)
            msgs.append(model.top_encoders[m](z_m.unsqueeze(0))[0])
        out = model.joint_encoder(torch.stack(msgs).mean(0).unsqueeze(0))[0]
        mu_t, s_t = out[:D], torch.exp(0.5 * out[D:])
        z = mu_t + s_t * eps(0)
        for m in have:
            loc = model.top_decoders[m](z.unsqueeze(0))[0]
            residuals[m].append((codes[i, m] - loc) ** 2)
        codes[i] = z
        losses.append(loss + top_beta * a_t * kl_standard(mu_t, s_t))
    # the adapted scale: the RMS residual of the batch's observed samples of `a`
    scale = {"a": torch.cat(residuals["a"]).mean().sqrt() if adapt else 1.0, "b": 1.0}
    for i, have in enumerate(observed()):
        for m in have:
            loc = model.top_decoders[m](codes[i].unsqueeze(0))[0]
            nll = -Normal(loc, scale[m]).log_prob(codes[i, m]).sum()
            losses[i] = losses[i] + gammas[m] * nll
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_forced_perceptual_dropout_keeps_a_random_non_empty_proper_subset():
    model = nexus(dropout_rate=0.999, modalities=[
        {"name": m, "shape": [2]} for m in ("a", "b", "c", "d")
    ], modalities_specific_dim=1)  # fmt: skip
    torch.manual_seed(0)
    observed = torch.rand(4, 500) < 0.7
    kept = model._kept_messages(observed)
    assert not (kept & ~observed).any()  # only observed messages
    count, left = observed.sum(0), kept.sum(0)
    several = count >= 2
    assert (left[several] >= 1).all() and (left[several] < count[several]).all()
    assert torch.equal(kept[:, ~several], observed[:, ~several])  # one message: never dropped
    sizes = left[count == 4].bincount(minlength=4)[1:]  # 1, 2 or 3 of 4 kept, evenly
    assert (sizes > 0.2 * sizes.sum()).all()
    assert torch.equal(model.eval()._kept_messages(observed), observed)  # never at inference


def test_missing_modalities_are_decoded_through_the_top_latent():
    """A sample given a alone: its code for b is decoded top-down, top_decoder_b(z) (the mean of
    p(z_b | z), as the paper decodes), while its code for a comes from its encoder."""
    model = nexus().eval()
    b = batch().index(slice(0, 2))  # the samples that have a
    latent = model.encode(b, given=["a"], n_samples=5, generator=torch.Generator().manual_seed(0))
    expected = model.top_decoders["b"](latent.codes[SHARED].reshape(-1, D)).view(5, 2, -1)
    torch.testing.assert_close(latent.codes[private_space("b")], expected)
    assert not latent.observed[private_space("b")].any()
    assert latent.observed[private_space("a")].all()
    # the same unconditionally
    samples = model.draw_prior(4, generator=torch.Generator().manual_seed(1))
    top_down = model.top_decoders["a"](samples.codes[SHARED][0])
    torch.testing.assert_close(samples.codes[private_space("a")][0], top_down)


def test_the_likelihood_scores_observed_bottom_codes_under_the_tracked_scales():
    """log p(z_m | z) = log N(z_m; top_decoder_m(z), s_m): the tracked scale enters the
    importance weights of an observed modality's bottom code."""
    model = nexus().eval()
    b = batch()
    g = torch.Generator().manual_seed(2)
    before = model.log_likelihood(b, k=50, generator=g)
    with torch.no_grad():
        model.bottom_scales.copy_(torch.tensor([0.5, 2.0]))
    after = model.log_likelihood(b, k=50, generator=torch.Generator().manual_seed(2))
    assert torch.isfinite(before).all() and torch.isfinite(after).all()
    assert not torch.allclose(before, after)


def test_training_tracks_each_top_decoders_residual_scale():
    model = nexus()
    before = model.bottom_scales.clone()
    model.eval()(batch())
    assert torch.equal(model.bottom_scales, before)  # evaluation leaves them
    model.train()(batch())
    assert not torch.equal(model.bottom_scales, before)
    assert (model.bottom_scales > 0).all()


def test_bottom_sizes_must_name_every_modality():
    with pytest.raises(ValueError, match="modalities_specific_dim: one size for each"):
        nexus(modalities_specific_dim={"a": 2})
    with pytest.raises(ValueError, match="adapt_top_decoder_variance"):
        nexus(adapt_top_decoder_variance=["z"])
