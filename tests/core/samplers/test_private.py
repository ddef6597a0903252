"""Models with private latents get one sub-sampler per latent space."""

from __future__ import annotations

import pytest
import torch

from core.samplers import build_sampler, load_sampler, save_sampler
from tests.core.samplers.helpers import FAST_FLOW

SPACES = {"shared": 4, "private.image": 2, "private.label": 2}


@pytest.mark.parametrize("name", ["prior", "gmm", "maf"])
def test_one_density_per_latent_space(name, mopoe, digits_train, tmp_path) -> None:
    options = {"maf": {**FAST_FLOW, "epochs": 3}, "gmm": {"n_components": 3}}.get(name, {})
    sampler = build_sampler(name, **options).fit(
        mopoe, digits_train, generator=torch.Generator().manual_seed(0)
    )
    assert sampler.config()["spaces"] == SPACES
    latent = sampler.sample(5, generator=torch.Generator().manual_seed(1))
    assert latent.z.shape == (1, 5, 4)
    assert {m: w.shape for m, w in latent.private.items()} == {
        "image": (1, 5, 2),
        "label": (1, 5, 2),
    }
    out = mopoe.sample(5, sampler=sampler, generator=torch.Generator().manual_seed(1))
    save_sampler(sampler, tmp_path)
    again = mopoe.sample(
        5, sampler=load_sampler(tmp_path, mopoe), generator=torch.Generator().manual_seed(1)
    )
    for m in out:
        assert torch.equal(out[m], again[m])


def test_private_latents_are_used_by_the_decoder(mopoe, digits_train) -> None:
    sampler = build_sampler("gmm", n_components=3).fit(mopoe, digits_train)
    latent = sampler.sample(4, generator=torch.Generator().manual_seed(0))
    other = type(latent)(latent.z, None, {m: w + 1.0 for m, w in latent.private.items()})
    a = mopoe.decoder_outputs(latent)["image"]
    b = mopoe.decoder_outputs(other)["image"]
    assert not torch.allclose(a, b)
