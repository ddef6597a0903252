"""evaluate() and `mmvae evaluate`: a JSON report for both model families."""

from __future__ import annotations

import argparse
import json

import pytest
from metric_fixtures import make_dataset
from PIL import Image

from core.cli.evaluate import register
from core.data.npz import save_npz
from core.metrics import METRICS, evaluate


def test_evaluate_report_is_json(trained, dataset, tmp_path):
    small = dataset.subset(slice(0, 64))
    report = evaluate(trained, small, k=10, n_samples=64, output_dir=tmp_path, conditional=True)
    json.dumps(report, allow_nan=False)
    assert set(report["metrics"]) == {
        "likelihood", "coherence", "reconstruction", "clustering", "fid", "figures"
    }  # fmt: skip
    m = report["metrics"]
    assert m["likelihood"]["joint_nll"] > 0 and set(m["likelihood"]["conditional"]) == {
        "image", "label"
    }  # fmt: skip
    assert "accuracy" in m["coherence"]["cross"] and "balanced_accuracy" in m["coherence"]["cross"]
    assert m["coherence"]["cross"]["skipped_targets"] == {
        "image": "no classifier given for this modality"
    }
    for f in m["figures"]["files"]:
        with Image.open(f) as img:
            assert img.format == "PNG"
    assert json.loads((tmp_path / "metrics.json").read_text()) == report


def test_evaluate_partially_observed_dataset(trained):
    ds = make_dataset(70, missing=True)
    report = evaluate(trained, ds, ["likelihood", "coherence", "reconstruction"], k=5)
    json.dumps(report, allow_nan=False)
    assert report["dataset"]["missing_rate"]["image"] > 0


def test_unknown_metric(trained, dataset):
    with pytest.raises(ValueError, match="unknown"):
        evaluate(trained, dataset, ["likelihood", "nope"])
    assert {"likelihood", "coherence", "fid", "reconstruction", "clustering", "figures"} <= set(
        METRICS
    )


def test_cli(trained, dataset, tmp_path, capsys):
    trained.save_pretrained(tmp_path / "model")
    save_npz(dataset.subset(slice(0, 40)), tmp_path / "data.npz")
    parser = argparse.ArgumentParser(prog="mmvae")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        ["evaluate", str(tmp_path / "model"), "--dataset", str(tmp_path / "data.npz"),
         "--metrics", "likelihood,clustering", "--k", "5"]
    )  # fmt: skip
    assert args.func(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_type"] == trained.model_type
    assert set(report["metrics"]) == {"likelihood", "clustering"}
    with pytest.raises(SystemExit):
        parser.parse_args(["evaluate", "m", "--dataset", "d", "--metrics", "bogus"])
