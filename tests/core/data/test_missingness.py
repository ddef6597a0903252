"""MCAR and MNAR generators: rates, reproducibility, the kept-one rule and argument errors."""

import math

import pytest
import torch

from core.data import MultimodalDataset, load_builtin, mcar, mnar


@pytest.fixture(scope="module")
def digits() -> MultimodalDataset:
    return load_builtin("digits", "all")


def _observed(ds: MultimodalDataset) -> torch.Tensor:
    return torch.stack([ds.masks[m] for m in ds.modalities], 1)


def test_mcar_rate_matches_ratio_after_the_kept_one_rule(digits):
    ratio, n, m = 0.3, len(digits), len(digits.modalities)
    out = mcar(digits, ratio, seed=1)
    # An entry stays missing unless all M were dropped and it is the one picked back.
    expected = ratio - ratio**m / m
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n)
    for rate in out.missing_rate().values():
        assert abs(rate - expected) < tolerance
    assert _observed(out).any(1).all()
    assert out.metadata["missingness"] == {"kind": "mcar", "ratio": 0.3, "seed": 1}
    assert out.metadata["source"] == "builtin:digits"


def test_mcar_is_seeded(digits):
    a, b, c = mcar(digits, 0.5, seed=3), mcar(digits, 0.5, seed=3), mcar(digits, 0.5, seed=4)
    assert torch.equal(_observed(a), _observed(b))
    assert not torch.equal(_observed(a), _observed(c))


def test_mcar_zero_ratio_keeps_everything_and_leaves_input_alone(digits):
    assert _observed(mcar(digits, 0.0)).all()
    mcar(digits, 0.9)
    assert _observed(digits).all()


def test_mcar_keeps_missing_entries_missing_and_one_modality_per_sample():
    n = 2000
    data = {m: torch.ones(n, 2) for m in "abc"}
    masks = {"a": torch.arange(n) % 2 == 0, "b": torch.ones(n, dtype=torch.bool)}
    masks["c"] = ~masks["a"]
    ds = MultimodalDataset(data, masks)
    out = mcar(ds, 0.95, seed=0)
    before, after = _observed(ds), _observed(out)
    assert not (after & ~before).any()
    assert (after.sum(1) >= 1).all()
    # Nearly every sample loses both of its observed modalities; the one kept is uniform.
    kept_b = out.masks["b"].float().mean()
    assert abs(kept_b - 0.5) < 0.05
    assert (out.data["a"][~out.masks["a"]] == 0).all()


@pytest.mark.parametrize("ratio", [-0.1, 1.0, 1.5])
def test_mcar_rejects_ratio_outside_range(digits, ratio):
    with pytest.raises(ValueError, match=r"ratio: must be in \[0, 1\)"):
        mcar(digits, ratio)


def test_mnar_rates_per_class_match_probabilities(digits):
    probs = [0.05 + 0.09 * c for c in range(10)]
    out = mnar(digits, {"image": probs}, seed=2)
    assert out.masks["label"].all()
    for c, p in enumerate(probs):
        in_class = digits.labels == c
        rate = (~out.masks["image"][in_class]).float().mean().item()
        tolerance = 4 * math.sqrt(p * (1 - p) / int(in_class.sum()))
        assert abs(rate - p) < tolerance, (c, rate, p)
    assert out.metadata["missingness"]["kind"] == "mnar"
    assert out.metadata["missingness"]["probabilities"]["image"] == probs


def test_mnar_extreme_probabilities_are_exact_and_keep_one(digits):
    probs = [1.0 if c < 5 else 0.0 for c in range(10)]
    out = mnar(digits, {"image": probs, "label": probs}, seed=0)
    low = digits.labels < 5
    assert _observed(out)[~low].all()
    assert (_observed(out)[low].sum(1) == 1).all()
    a, b = mnar(digits, {"image": [0.5] * 10}, 7), mnar(digits, {"image": [0.5] * 10}, 7)
    assert torch.equal(_observed(a), _observed(b))
    assert not torch.equal(_observed(a), _observed(mnar(digits, {"image": [0.5] * 10}, 8)))


def test_mnar_argument_errors(digits):
    with pytest.raises(ValueError, match="no modality named 'sound'"):
        mnar(digits, {"sound": [0.1] * 10})
    with pytest.raises(ValueError, match=r"one probability per class \(10\), got 3"):
        mnar(digits, {"image": [0.1] * 3})
    with pytest.raises(ValueError, match=r"each must be in \[0, 1\]"):
        mnar(digits, {"image": [1.2] + [0.1] * 9})
    unlabelled = MultimodalDataset(digits.data)
    with pytest.raises(ValueError, match="no labels"):
        mnar(unlabelled, {"image": [0.1] * 10})
