"""`decoding_error(space, targets)`: whether codes of one latent space alone decode into the
targets, the other spaces drawn from their priors, and the reason when they do not (what the
HTTP /decode route refuses before any work)."""

from __future__ import annotations

import torch

from core.models.latents import Latent
from tests.core.models.objective_helpers import LINEAR, tiny


def decodes(model, space: str, targets: list[str]) -> dict[str, torch.Tensor]:
    """Decoder means from zero codes of `space` alone (what the route runs when allowed)."""
    codes = torch.zeros(1, 2, model.latent_spaces[space].dim)
    with torch.no_grad():
        return model.decode_mean(Latent({space: codes}, primary=model.primary_space), targets)


def test_a_joint_model_decodes_every_modality_from_each_space() -> None:
    model = tiny("dmvae", modalities_specific_dim={"a": 2, "b": 1}).eval()
    for space in model.latent_spaces:  # shared, private/a, private/b: the others from priors
        assert model.decoding_error(space, ["a", "b"]) is None
        assert {m: x.shape for m, x in decodes(model, space, ["a", "b"]).items()} == {
            "a": (1, 2, 3),
            "b": (1, 2, 4),
        }


def test_a_hierarchy_draws_the_other_levels_from_their_priors() -> None:
    model = tiny("mhvae", n_latent=2, level_dims=[3], feature_dim=3, block_network=LINEAR).eval()
    for space in model.latent_spaces:
        assert model.decoding_error(space, ["a"]) is None
        assert decodes(model, space, ["a"])["a"].shape == (1, 2, 3)


def test_a_conditional_decoder_needs_the_inputs_it_is_conditioned_on() -> None:
    model = tiny("cvae", main_modality="a", condition_features=3, posterior_network=LINEAR)
    reason = model.decoding_error("shared", ["a"])
    assert reason is not None and "'a' needs the ['condition']" in reason
    assert "not generated" in model.decoding_error("shared", ["b"])


def test_without_a_prior_only_the_spaces_a_decoder_reads_decode_it() -> None:
    model = tiny("dccae").eval()  # private/a and private/b, no prior over either
    assert model.decoder_spaces == {"a": ("private/a",), "b": ("private/b",)}
    assert model.decoding_error("private/a", ["a"]) is None
    assert decodes(model, "private/a", ["a"])["a"].shape == (1, 2, 3)
    reason = model.decoding_error("private/a", ["a", "b"])
    assert reason is not None and "'b' needs codes of ['private/b']" in reason
    assert "no prior" in reason
    assert tiny("ae").decoding_error("shared", ["a", "b"]) is None  # decoders read only it
