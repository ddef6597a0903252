"""Scoring many draws a slice of rows at a time (`DECODE_ROWS`) gives what one pass gives."""

from __future__ import annotations

import pytest
import torch

import core.models.base as base
from core.data.batch import Batch
from core.metrics.likelihood import conditional_log_prob
from core.models import build_model
from tests.core.models.cases import VARIANTS, make_batch, make_config

SCORED = sorted(v for v in VARIANTS if not build_model(make_config(v)).deterministic)


def _partly_missing(model, config: dict, n: int) -> Batch:
    """A batch where each sample misses one modality (never one the model requires)."""
    batch = make_batch(config, n=n)
    names = list(batch.masks)
    masks = {m: torch.arange(n) % len(names) != i for i, m in enumerate(names)}
    masks.update({m: batch.masks[m] for m in model.required_inputs})
    return Batch(batch.data, masks, batch.labels)


def _log_likelihood(model, batch: Batch, rows: int, monkeypatch) -> torch.Tensor:
    monkeypatch.setattr(base, "DECODE_ROWS", rows)
    torch.manual_seed(3)
    return model.log_likelihood(batch, k=12)


@pytest.mark.parametrize("variant", SCORED)
def test_the_log_likelihood_decoded_in_slices_equals_one_pass(variant, monkeypatch):
    config = make_config(variant)
    torch.manual_seed(0)
    model = build_model(config).eval()
    for batch in (make_batch(config, n=5), _partly_missing(model, config, 5)):
        whole = _log_likelihood(model, batch, 10**9, monkeypatch)
        sliced = _log_likelihood(model, batch, 7, monkeypatch)  # one draw of 5 rows a slice
        assert torch.isfinite(whole).all()
        torch.testing.assert_close(sliced, whole, rtol=1e-5, atol=1e-5)
        assert torch.randn(()).item() == _after_draws(model, batch, monkeypatch)
        latent = model.encode(batch, n_samples=12)
        weights = []
        for rows in (10**9, 7):
            monkeypatch.setattr(base, "DECODE_ROWS", rows)
            weights.append(model.log_weights(batch, latent))  # [S, B], draw by draw
        torch.testing.assert_close(weights[1], weights[0], rtol=1e-5, atol=1e-5)


def _after_draws(model, batch: Batch, monkeypatch) -> float:
    """The next global random number after a one-pass estimate: slicing draws nothing more."""
    _log_likelihood(model, batch, 10**9, monkeypatch)
    return torch.randn(()).item()


def test_the_posterior_estimator_decodes_its_targets_in_slices(monkeypatch):
    config = make_config("mopoe")
    torch.manual_seed(0)
    model = build_model(config).eval()
    batch = make_batch(config, n=4)
    values = []
    for rows in (10**9, 3):
        monkeypatch.setattr(base, "DECODE_ROWS", rows)
        torch.manual_seed(5)
        values.append(conditional_log_prob(model, batch, ["image"], ["label"], 9, "posterior"))
    torch.testing.assert_close(values[1], values[0], rtol=1e-5, atol=1e-5)


def test_an_unknown_target_is_named_in_the_error():
    config = make_config("mopoe")
    model = build_model(config).eval()
    batch = make_batch(config, n=2)
    with pytest.raises(ValueError, match="targets: unknown modality 'nope'"):
        conditional_log_prob(model, batch, ["image"], ["nope"], 3, "posterior")
