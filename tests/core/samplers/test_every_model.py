"""Every built-in model gets a fitted sampler with one density per independent latent space, and
draws synthetic data from it (what `augment` jobs and the HTTP `sample` route rely on)."""

from __future__ import annotations

import pytest
import torch

from core.data.builtin import builtin_modalities
from core.models import MODEL_REGISTRY, available_models, build_model
from core.samplers import build_sampler
from tests.core.samplers.helpers import NET

BUILT_IN = [m for m in available_models() if MODEL_REGISTRY[m].__module__.startswith("core.")]
EXTRA = {"mmvae": {"K": 2}, "mmvae_plus": {"K": 2}, "cmvae": {"K": 2}}


@pytest.mark.parametrize("model_type", BUILT_IN)
def test_a_gmm_sampler_covers_every_independent_space(model_type, digits_train) -> None:
    torch.manual_seed(0)
    config = {
        "model_type": model_type,
        "modalities": builtin_modalities("digits"),
        "latent_dim": 3,
        "encoder": NET,
        "decoder": NET,
        **EXTRA.get(model_type, {}),
    }
    model = build_model(config).eval()
    data = digits_train.subset(torch.arange(120))
    if not model.sampled_spaces:  # a conditional model: refused, and said why
        with pytest.raises(ValueError, match="no latent space with an independent prior"):
            build_sampler("gmm", n_components=2, max_iter=10).fit(model, data)
        return
    sampler = build_sampler("gmm", n_components=2, max_iter=10).fit(model, data)
    assert sampler.config()["spaces"] == model.sampled_spaces
    out = model.sample(4, sampler=sampler, generator=torch.Generator().manual_seed(1))
    assert {m: tuple(x.shape) for m, x in out.items()} == {
        "image": (4, 1, 8, 8),
        "label": (4, 10),
    }
    assert all(torch.isfinite(x).all() for x in out.values())
