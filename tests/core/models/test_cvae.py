"""CVAE's objective against a hand computation, with a fixed and a learned prior; what it
generates and from what, refused clearly otherwise (Sohn et al. 2015; MODELS.md)."""

from __future__ import annotations

import pytest
import torch
from torch.distributions import Normal

from core.data.batch import Batch
from tests.core.models.objective_helpers import (
    LINEAR,
    D,
    batch,
    eps,
    fixed_noise,  # noqa: F401  (fixture)
    kl_normal,
    tiny,
    weight,
)

F = 3
OPTIONS = {"main_modality": "a", "condition_features": F, "posterior_network": LINEAR}


def cvae(**options):
    return tiny("cvae", **{**OPTIONS, **options})


def gaussian(out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return out[:D], torch.exp(0.5 * out[D:])


@pytest.mark.usefixtures("fixed_noise")
@pytest.mark.parametrize("learned_prior", [False, True])
def test_objective_is_the_conditional_elbo_of_samples_with_every_modality(learned_prior):
    beta = 0.6
    model = cvae(beta=beta, prior_network=LINEAR if learned_prior else None)
    b = batch()
    losses = []
    for i in range(3):
        if not (b.masks["a"][i] and b.masks["b"][i]):
            losses.append(torch.tensor(0.0))  # needs x_main and every condition
            continue
        f_a = model.encoders["a"](b.data["a"][i : i + 1])[0]
        c = model.encoders["b"](b.data["b"][i : i + 1])[0]
        mu, s = gaussian(model.posterior_head(torch.cat([f_a, c]).unsqueeze(0))[0])
        if learned_prior:
            prior = gaussian(model.prior_head(c.unsqueeze(0))[0])
        else:
            prior = (torch.zeros(D), torch.ones(D))
        z = mu + s * eps(0)
        out = model.decoders["a"](torch.cat([z, c]).unsqueeze(0))[0]
        rec = weight("a") * Normal(out, 0.5).log_prob(b.data["a"][i]).sum()
        losses.append(-rec + beta * kl_normal(mu, s, *prior))
    torch.testing.assert_close(model(b).loss, torch.stack(losses).mean(), rtol=1e-5, atol=1e-5)


def test_generates_the_main_modality_from_the_conditions_through_the_prior():
    """Given b alone, z comes from p(z | c) and x_a from the decoder over [z, c]."""
    model = cvae(prior_network=LINEAR).eval()
    b = batch().index(slice(2, 3))  # sample 2 has b only
    latent = model.encode(b, n_samples=4, generator=torch.Generator().manual_seed(0))
    c = model.encoders["b"](b.data["b"])[0]
    mu, s = gaussian(model.prior_head(c.unsqueeze(0))[0])
    torch.testing.assert_close(latent.posterior.loc[0], mu)
    torch.testing.assert_close(latent.posterior.scale[0], s)
    generated = model.decode_mean(latent, ["a"])["a"]
    by_hand = model.decoders["a"](torch.cat([latent.z[:, 0], c.expand(4, F)], -1))
    torch.testing.assert_close(generated[:, 0], by_hand)


def test_what_it_cannot_do_is_refused_with_the_reason():
    model = cvae().eval()
    assert model.generated == ["a"] and model.required_inputs == ["b"]
    assert model.generation_error(["b"], ["a"]) is None
    assert "not generated" in model.generation_error(["a", "b"], ["b"])
    assert "['b'] not given" in model.generation_error(["a"], ["a"])
    full = Batch.full({"a": torch.randn(2, 3), "b": torch.eye(4)[:2]})
    with pytest.raises(ValueError, match=r"targets: \['b'\] are inputs of this cvae model"):
        model.generate(full, given=["b"], targets=["b"])
    with pytest.raises(ValueError, match=r"\['b'\] not given"):
        model.generate(full, given=["a"], targets=["a"])
    with pytest.raises(ValueError, match="sample 0 is not given 'b'"):
        model.encode(full, given=["a"])
    with pytest.raises(ValueError, match="no unconditional prior"):
        model.sample(3)
    assert model.sampled_spaces == {}  # nothing for a fitted sampler to model


def test_roles_are_validated():
    with pytest.raises(ValueError, match="main_modality: 'z' is not among"):
        cvae(main_modality="z")
    with pytest.raises(ValueError, match="conditioning_modalities: every modality but the main"):
        cvae(conditioning_modalities=["a"])
    assert cvae(main_modality=None).main == "a"  # default: the first modality
