"""Reconstruction: MSE 0 and SSIM 1 on perfect reconstructions; keys per setting."""

from __future__ import annotations

import pytest
import torch
from metric_fixtures import Replay

from core.metrics import mse, reconstruction, ssim


def test_ssim_and_mse_of_identical_images():
    x = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(ssim(x, x), torch.ones(4))
    torch.testing.assert_close(mse(x, x), torch.zeros(4))
    assert (ssim(x, 1 - x) < 0.5).all()
    big = torch.rand(2, 3, 32, 32)
    noisy = (big + 0.1 * torch.randn_like(big)).clamp(0, 1)
    assert (ssim(big, noisy) < 1).all() and (ssim(big, noisy) > 0).all()


def test_perfect_reconstruction(dataset):
    report = reconstruction(Replay(dataset.data), dataset)
    for setting in ("self", "cross", "joint"):
        assert report[setting]["image"]["mse"] == pytest.approx(0.0)
        assert report[setting]["image"]["ssim"] == pytest.approx(1.0)
        assert report[setting]["label"]["accuracy"] == 1.0
        assert "ssim" not in report[setting]["label"]


def test_trained_models(trained, dataset):
    report = reconstruction(trained, dataset)
    img = report["self"]["image"]
    assert 0 < img["mse"] < 0.5 and -1 <= img["ssim"] <= 1 and img["n"] == len(dataset)
    assert report["joint"]["label"]["accuracy"] > 0.5
    assert set(report["cross"]) == {"image", "label"}
