"""FID: closed-form Gaussian values, zero for identical data, no Inception without weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from metric_fixtures import Replay
from safetensors.torch import save_file

from core.metrics import (
    InceptionV3Features,
    MissingWeightsError,
    PixelFeatures,
    evaluate,
    feature_statistics,
    fid,
    fid_scores,
    frechet_distance,
)
from core.metrics.inception import InceptionV3


def test_closed_form_gaussian_values():
    d, mu = 5, np.arange(5.0)
    # ‖μ‖² + tr(I + 4I - 2·2I) = ‖μ‖² + d
    assert frechet_distance(np.zeros(d), np.eye(d), mu, 4 * np.eye(d)) == pytest.approx(30 + d)
    a = np.random.default_rng(0).normal(size=(d, d))
    cov = a @ a.T + np.eye(d)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(mu, cov, mu + 1, cov) == pytest.approx(d, abs=1e-6)


def test_singular_covariances_are_handled():
    assert frechet_distance(np.zeros(3), np.zeros((3, 3)), np.ones(3), np.zeros((3, 3))) == (
        pytest.approx(3.0, abs=1e-4)
    )


def test_identical_distributions_give_zero(dataset):
    model = Replay(dataset.data)
    assert fid(model, dataset, "image", PixelFeatures()) == pytest.approx(0.0, abs=1e-5)
    assert fid(model, dataset, "image", given=["label"]) == pytest.approx(0.0, abs=1e-5)
    mu, cov = feature_statistics(torch.randn(50, 3))
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)


def test_inception_requires_weights(tmp_path, trained, dataset):
    with pytest.raises(MissingWeightsError, match="weights required"):
        InceptionV3Features.from_weights(None)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        InceptionV3Features.from_weights(tmp_path / "absent.safetensors")
    pickle = tmp_path / "weights.pt"
    pickle.write_bytes(b"x")
    with pytest.raises(ValueError, match="safetensors"):
        InceptionV3Features.from_weights(pickle)
    with pytest.raises(MissingWeightsError):
        evaluate(trained, dataset, ["fid"], inception_weights=str(tmp_path / "no.safetensors"))


def test_inception_loads_a_safetensors_state_dict(tmp_path):
    with torch.device("meta"):
        shapes = InceptionV3().state_dict()
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in shapes.items()}
    state["fc.weight"] = torch.zeros(1008, 2048)  # classifier head in the file: ignored
    path = tmp_path / "inception.safetensors"
    save_file(state, path)
    net = InceptionV3Features.from_weights(path).network
    assert not any(p.is_meta for p in net.parameters())
    assert not any(b.is_meta for b in net.buffers())
    del state["Mixed_7c.branch_pool.conv.weight"]
    save_file(state, path)
    with pytest.raises(ValueError, match="missing"):
        InceptionV3Features.from_weights(path)


def test_fid_scores_on_trained_models(trained, dataset):
    g = torch.Generator().manual_seed(0)
    report = fid_scores(trained, dataset, n=100, generator=g)
    assert report["extractor"] == {"image": "pixels"}
    uncond, cond = report["unconditional"]["image"], report["conditional"]["label->image"]
    assert math.isfinite(uncond) and uncond > 0 and math.isfinite(cond) and cond > 0


@pytest.mark.slow
def test_inception_features_shape():
    torch.manual_seed(0)
    feats = InceptionV3Features(InceptionV3())(torch.rand(2, 1, 8, 8))  # test of shapes only
    assert feats.shape == (2, 2048) and torch.isfinite(feats).all()


def test_conditional_fid_from_every_subset_of_the_other_modalities():
    from core.data import MultimodalDataset
    from core.models import build_model

    torch.manual_seed(0)
    data = MultimodalDataset(
        {"image": torch.rand(40, 1, 4, 4), "a": torch.randn(40, 2), "b": torch.randn(40, 3)}
    )
    mlp = {"kind": "mlp", "hidden": [8]}
    modalities = [{"name": m, "shape": list(x.shape[1:])} for m, x in data.data.items()]
    modalities[0]["kind"] = "image"
    model = build_model({"model_type": "mvae", "latent_dim": 2, "modalities": modalities,
                         "encoder": mlp, "decoder": mlp})  # fmt: skip
    every = fid_scores(
        model, data, n=40, every_subset=True, generator=torch.Generator().manual_seed(0)
    )
    assert sorted(every["conditional"]) == ["a+b->image", "a->image", "b->image"]
    assert all(math.isfinite(v) for v in every["conditional"].values())
    assert sorted(fid_scores(model, data, n=40)["conditional"]) == ["a+b->image"]


@pytest.mark.slow
@pytest.mark.parametrize("dims", [64, 192, 768, 2048])
def test_inception_features_of_each_block(dims):
    torch.manual_seed(0)
    extractor = InceptionV3Features(InceptionV3(), dims)  # shapes only
    feats = extractor(torch.rand(2, 3, 8, 8))
    assert feats.shape == (2, dims) and torch.isfinite(feats).all()
    assert extractor.name == ("inception_v3" if dims == 2048 else f"inception_v3_{dims}")
    with pytest.raises(ValueError, match="dims: 100 is not one of"):
        InceptionV3Features(InceptionV3(), 100)


def test_inception_weights_from_the_hub_need_a_pinned_commit():
    from core.hub import InvalidModelIdError
    from core.metrics.inception import resolve_weights

    for unpinned in (
        "hf://org/inception/pt_inception.safetensors",
        "hf://org/inception@main/w.safetensors",
    ):
        with pytest.raises(InvalidModelIdError, match="40-hex commit sha"):
            resolve_weights(unpinned)
