"""Every built-in model through the command line, as a user would run it: `mmvae train` on
digits with missing modalities, then `mmvae evaluate` and `mmvae augment` on what it saved."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from core.cli import augment, evaluate, train
from core.data import save_npz
from core.data.builtin import load_builtin
from core.models import MODEL_REGISTRY, MultimodalVAE, available_models

BUILT_IN = [m for m in available_models() if MODEL_REGISTRY[m].__module__.startswith("core.")]


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmvae")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (train, evaluate, augment):
        command.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.slow
@pytest.mark.parametrize("model_type", BUILT_IN)
def test_train_evaluate_and_augment_from_the_command_line(model_type, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--model", model_type, "--dataset", "digits", "--epochs", "1"]
    argv += ["--output", str(out), "--latent-dim", "4", "--missing-ratio", "0.3", "--no-progress"]
    assert run(argv) == 0
    assert json.loads(capsys.readouterr().out)["model_type"] == model_type
    model_dir = str(out / "model")
    assert run(["evaluate", model_dir, "--dataset", "digits", "--k", "5", "--n-samples", "50",
                "--metrics", "likelihood,coherence", "--progress"]) == 0  # fmt: skip
    printed = capsys.readouterr()
    report = json.loads(printed.out)
    assert "evaluate: 100%" in printed.err and "2/2" in printed.err  # the bar over the metrics
    model = MultimodalVAE.from_pretrained(model_dir)
    if model.deterministic:  # no likelihood: the report says so instead of a figure
        assert "deterministic" in report["metrics"]["likelihood"]["skipped"]
    else:
        assert np.isfinite(report["metrics"]["likelihood"]["joint_nll"])
    synthetic = tmp_path / "synthetic.npz"
    argv = ["augment", model_dir, "--n", "20", "--output", str(synthetic), "--no-progress"]
    if not model.has_prior:  # an autoencoder: synthetic samples from a sampler fitted on codes
        with pytest.raises(ValueError, match="fit a latent sampler"):
            run(argv)
        argv += ["--sampler", "gmm"]
    if not model.sampled_spaces:
        # a conditional model has no synthetic samples; it completes what it generates
        with pytest.raises(ValueError, match="no unconditional prior"):
            run(argv)
        digits = load_builtin("digits", "test").subset(torch.arange(20))
        hidden = {**digits.masks, "image": torch.arange(20) % 2 == 0}
        save_npz(digits.with_masks(hidden), tmp_path / "partial.npz")
        argv = ["augment", model_dir, "--complete", str(tmp_path / "partial.npz")]
        argv += ["--output", str(synthetic), "--no-progress"]
    assert run(argv) == 0
    with np.load(synthetic) as arrays:
        assert arrays["image"].shape == (20, 1, 8, 8) and arrays["label"].shape == (20, 10)
