"""Samplers save as `<model_dir>/sampler/` (JSON + safetensors only) and load back exactly."""

from __future__ import annotations

import json

import pytest
import torch

from core.samplers import (
    SamplerFormatError,
    available_samplers,
    build_sampler,
    has_sampler,
    load_sampler,
    save_sampler,
)
from tests.core.samplers.helpers import FAST_FLOW

OPTIONS = {
    "prior": {},
    "gmm": {"n_components": 4, "covariance_type": "diag"},
    "maf": {**FAST_FLOW, "epochs": 2},
    "iaf": {**FAST_FLOW, "epochs": 1},
}


@pytest.fixture(scope="module")
def fitted(mvae, digits_train) -> dict:
    return {
        name: build_sampler(name, **OPTIONS[name]).fit(
            mvae, digits_train, generator=torch.Generator().manual_seed(0)
        )
        for name in OPTIONS
    }


def test_registry_lists_every_sampler() -> None:
    assert available_samplers() == ["gmm", "iaf", "maf", "prior"]
    with pytest.raises(KeyError, match="unknown 'vamp'"):
        build_sampler("vamp")


@pytest.mark.parametrize("name", list(OPTIONS))
def test_round_trip_gives_identical_samples(name, fitted, mvae, tmp_path) -> None:
    sampler = fitted[name]
    folder = save_sampler(sampler, tmp_path)
    assert folder == tmp_path / "sampler" and has_sampler(tmp_path)
    assert sorted(p.suffix for p in folder.iterdir()) == [".json", ".safetensors"]
    loaded = load_sampler(tmp_path, mvae.sampled_spaces)
    assert type(loaded) is type(sampler) and loaded.config() == sampler.config()
    a = mvae.sample(9, sampler=sampler, generator=torch.Generator().manual_seed(5))
    b = mvae.sample(9, sampler=loaded, generator=torch.Generator().manual_seed(5))
    c = mvae.sample(9, sampler=loaded, generator=torch.Generator().manual_seed(5))
    for m in a:
        assert torch.equal(a[m], b[m]) and torch.equal(b[m], c[m])
    codes = sampler.sample(3, generator=torch.Generator().manual_seed(0))
    assert list(codes) == ([] if name == "prior" else ["shared"])
    for space, z in codes.items():
        torch.testing.assert_close(loaded.log_prob(z, space), sampler.log_prob(z, space))


def test_load_refuses_other_files(fitted, mvae, tmp_path) -> None:
    folder = save_sampler(fitted["gmm"], tmp_path)
    (folder / "sampler.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(SamplerFormatError, match=r"sampler\.pkl"):
        load_sampler(tmp_path, mvae.sampled_spaces)


def test_load_refuses_a_sampler_for_other_latent_spaces(fitted, mopoe, tmp_path) -> None:
    save_sampler(fitted["gmm"], tmp_path)
    with pytest.raises(SamplerFormatError, match="latent spaces"):
        load_sampler(tmp_path, mopoe.sampled_spaces)


def test_load_is_strict_about_tensors(fitted, mvae, tmp_path) -> None:
    folder = save_sampler(fitted["gmm"], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["options"]["n_components"] = 5
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(SamplerFormatError):
        load_sampler(tmp_path, mvae.sampled_spaces)


def test_unfitted_sampler_cannot_be_saved_or_sampled(tmp_path) -> None:
    sampler = build_sampler("gmm")
    with pytest.raises(ValueError, match="fit"):
        save_sampler(sampler, tmp_path)
    with pytest.raises(RuntimeError, match="fit"):
        sampler.sample(3)
