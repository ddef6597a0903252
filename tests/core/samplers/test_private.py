"""Models with private latents get one sub-sampler per latent space, keyed by the space's name."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from core.models import Latent
from core.samplers import build_sampler, load_sampler, save_sampler
from tests.core.samplers.helpers import FAST_FLOW

SPACES = {"shared": 4, "private/image": 2, "private/label": 2}


@pytest.mark.parametrize("name", ["gmm", "maf"])
def test_one_density_per_latent_space(name, mopoe, digits_train, tmp_path) -> None:
    options = {"maf": {**FAST_FLOW, "epochs": 3}, "gmm": {"n_components": 3}}[name]
    sampler = build_sampler(name, **options).fit(
        mopoe, digits_train, generator=torch.Generator().manual_seed(0)
    )
    assert mopoe.sampled_spaces == SPACES
    assert sampler.config()["spaces"] == SPACES
    codes = sampler.sample(5, generator=torch.Generator().manual_seed(1))
    assert {s: tuple(z.shape) for s, z in codes.items()} == {s: (5, d) for s, d in SPACES.items()}
    out = mopoe.sample(5, sampler=sampler, generator=torch.Generator().manual_seed(1))
    save_sampler(sampler, tmp_path)
    loaded = load_sampler(tmp_path, mopoe.sampled_spaces)
    again = mopoe.sample(5, sampler=loaded, generator=torch.Generator().manual_seed(1))
    for m in out:
        assert torch.equal(out[m], again[m])


def test_model_draws_each_space_from_the_sampler(mopoe, digits_train) -> None:
    sampler = build_sampler("gmm", n_components=3).fit(mopoe, digits_train)
    drawn = mopoe.draw_prior(6, sampler, torch.Generator().manual_seed(4)).codes
    direct = sampler.sample(6, torch.Generator().manual_seed(4))
    assert list(drawn) == list(SPACES)
    for space in SPACES:
        assert torch.equal(drawn[space][0], direct[space])


def test_private_latents_are_used_by_the_decoder(mopoe, digits_train) -> None:
    sampler = build_sampler("gmm", n_components=3).fit(mopoe, digits_train)
    latent = mopoe.draw_prior(4, sampler, torch.Generator().manual_seed(0))
    shifted = {s: z + 1.0 if s.startswith("private/") else z for s, z in latent.codes.items()}
    a = mopoe.decoder_outputs(latent)["image"]
    b = mopoe.decoder_outputs(Latent(shifted))["image"]
    assert not torch.allclose(a, b)


def test_samplers_saved_with_the_old_space_names_still_load(mopoe, digits_train, tmp_path):
    """Before spaces were named by the model, private spaces were saved as "private.<m>"."""
    sampler = build_sampler("gmm", n_components=2).fit(mopoe, digits_train)
    folder = save_sampler(sampler, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["spaces"] = {s.replace("/", "."): d for s, d in config["spaces"].items()}
    (folder / "config.json").write_text(json.dumps(config))
    tensors = load_file(folder / "sampler.safetensors")
    save_file(
        {k.replace("private/", "private."): v for k, v in tensors.items()},
        folder / "sampler.safetensors",
    )
    loaded = load_sampler(tmp_path, mopoe.sampled_spaces)
    assert loaded.config() == sampler.config()
