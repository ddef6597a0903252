"""Figures: PNG grids of the expected size, training curves from a JSON-lines log."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from core.metrics import conditional_grid, reconstruction_grid, sample_grid, training_curves


def _size(rows: int, cols: int, tile: int = 32, pad: int = 2) -> tuple[int, int]:
    return cols * (tile + pad) + pad, rows * (tile + pad) + pad


def test_grids(trained, dataset, tmp_path):
    g = torch.Generator().manual_seed(0)
    p = sample_grid(trained, 10, tmp_path / "samples.png", ncol=4, generator=g)
    with Image.open(p) as img:
        assert img.format == "PNG" and img.size == _size(3, 4)
    p = conditional_grid(trained, dataset, ["label"], "image", tmp_path / "c.png", 8, 3)
    with Image.open(p) as img:
        assert img.size == _size(4, 8)  # truth + 3 generations (the label is no image)
    p = reconstruction_grid(trained, dataset, "image", tmp_path / "r.png", n=5, scale=2)
    with Image.open(p) as img:
        assert img.size == _size(2, 5, tile=16)
    with pytest.raises(ValueError, match="not an image"):
        reconstruction_grid(trained, dataset, "label", tmp_path / "x.png")


def test_training_curves(tmp_path):
    log = tmp_path / "metrics.jsonl"
    lines = [{"step": s, "split": "train", "loss": 10 / (s + 1), "kl": 1.0} for s in range(20)]
    lines += [{"step": s, "split": "eval", "loss": 12 / (s + 1)} for s in range(0, 20, 5)]
    log.write_text("\n".join(json.dumps(r) for r in lines) + "\nnot json\n")
    p = training_curves(log, tmp_path / "curves.png")
    with Image.open(p) as img:
        img.verify()
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(ValueError, match="no metrics"):
        training_curves(tmp_path / "empty.jsonl", tmp_path / "x.png")
