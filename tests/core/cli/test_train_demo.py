"""`mmvae train` and `mmvae demo`, run in-process through their `register` functions."""

from __future__ import annotations

import argparse
import json

import pytest

from core.cli import demo, train


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmvae")
    sub = parser.add_subparsers(dest="command", required=True)
    train.register(sub)
    demo.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


SMALL = ["--latent-dim", "4", "--batch-size", "128", "--device", "cpu"]


def test_train_digits_one_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--dataset", "digits", "--epochs", "1", "--output", str(out), *SMALL]
    assert run([*argv, "--missing-ratio", "0.3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_type"] == "mvae" and summary["epochs_run"] == 1
    assert (out / "model" / "config.json").is_file()
    assert (out / "model" / "model.safetensors").is_file()
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert config["latent_dim"] == 4
    assert [m["name"] for m in config["modalities"]] == ["image", "label"]
    info = json.loads((out / "model" / "training.json").read_text())
    assert info["dataset"] == "digits" and "eval_loss" in info["final_metrics"]

    assert run([*argv[:4], "2", *argv[5:], "--resume"]) == 0  # one more epoch
    assert json.loads(capsys.readouterr().out)["epochs_run"] == 2
    with pytest.raises(ValueError, match="already holds checkpoints"):
        run(argv)


def test_spec_file_with_flag_overrides(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "dataset: digits\n"
        "model: {model_type: mvae, latent_dim: 3, encoder: {kind: mlp, hidden: [16]}}\n"
        f"trainer: {{epochs: 5, batch_size: 256, output_dir: {tmp_path / 'spec'}}}\n"
    )
    assert run(["train", "--spec", str(spec), "--epochs", "1", "--no-eval"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs_run"] == 1 and summary["eval_metrics"] == {}
    config = json.loads((tmp_path / "spec" / "model" / "config.json").read_text())["config"]
    assert config["latent_dim"] == 3 and config["encoder"]["hidden"] == [16]


def test_bad_spec_and_missing_options(tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(
        '{"dataset": "digits", "trainer": {"epochs": 1, "output_dir": "x"}, "modle": {}}'
    )
    with pytest.raises(ValueError, match="modle"):
        run(["train", "--spec", str(spec)])
    with pytest.raises(ValueError, match="dataset"):
        run(["train", "--output", str(tmp_path)])
    with pytest.raises(ValueError, match="unknown model"):
        run(["train", "--dataset", "digits", "--model", "nope", "--output", str(tmp_path / "n")])
    with pytest.raises(ValueError, match="epochs"):
        run(["train", "--dataset", "digits", "--epochs", "0", "--output", str(tmp_path / "z")])


def test_demo_prints_an_evaluation(tmp_path, capsys):
    assert (
        run(["demo", "--epochs", "1", "--output", str(tmp_path / "demo"), "--device", "cpu"]) == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["epochs"] == 1
    assert 0.0 <= report["image_to_label_accuracy"] <= 1.0
    assert report["test_log_likelihood"] < 0 and report["test_loss"] > 0
    assert (tmp_path / "demo" / "model" / "model.safetensors").is_file()


def test_train_on_a_folder_of_arrays_with_its_splits(tmp_path, capsys):
    """A dataset on disk trains and evaluates from its own splits, its specs from dataset.json."""
    from core.data.builtin import load_builtin
    from core.data.ondisk import write_array_folder

    digits = load_builtin("digits", "train")
    specs = [{"name": "image", "shape": [1, 8, 8], "kind": "image",
              "likelihood": {"kind": "bernoulli"}},
             {"name": "label", "shape": [10], "kind": "categorical",
              "likelihood": {"kind": "categorical"}}]  # fmt: skip
    config = {"modalities": specs, "splits": {"train": [0, 1000], "test": [1000, len(digits)]}}
    write_array_folder(tmp_path / "folder", [digits], len(digits), config)
    out = tmp_path / "run"
    argv = ["train", "--dataset", str(tmp_path / "folder"), "--epochs", "1", "--output", str(out)]
    assert run([*argv, *SMALL, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["dataset"] == str(tmp_path / "folder") and summary["eval_metrics"]["loss"] > 0
    config = json.loads((out / "model" / "config.json").read_text())["config"]
    assert config["modalities"][0]["likelihood"]["kind"] == "bernoulli"


def test_train_on_a_published_dataset_from_its_files(tmp_path, capsys):
    """`<name>:<folder>` reads the publisher's files; dataset_options reach the loader; the test
    split evaluates; the specs are the loader's."""
    from tests.core.data.test_published import write_polymnist

    write_polymnist(tmp_path / "poly", "train", list(range(10)) * 2)
    write_polymnist(tmp_path / "poly", "test", list(range(10)))
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"dataset: polymnist:{tmp_path / 'poly'}\n"
        "dataset_options: {missing_ratio: 0.5, seed: 1}\n"
        "model: {model_type: mopoe, latent_dim: 2, encoder: {kind: mlp, hidden: [8]}, "
        "decoder: {kind: mlp, hidden: [8]}}\n"
        f"trainer: {{epochs: 1, batch_size: 8, output_dir: {tmp_path / 'run'}}}\n"
    )
    assert run(["train", "--spec", str(spec), "--device", "cpu", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["eval_metrics"]["loss"] > 0
    config = json.loads((tmp_path / "run" / "model" / "config.json").read_text())["config"]
    assert [m["name"] for m in config["modalities"]] == ["m0", "m1", "m2", "m3", "m4"]
    assert config["modalities"][0]["likelihood"]["scale"] == 0.75
    with pytest.raises(ValueError, match="only published datasets take options"):
        spec.write_text(spec.read_text().replace(f"polymnist:{tmp_path / 'poly'}", "digits"))
        run(["train", "--spec", str(spec), "--device", "cpu", "--no-progress", "--overwrite"])
