"""Trained classifiers for coherence: trained per modality, saved as JSON + safetensors, loaded
back exactly, used by `mmvae evaluate --classifiers`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from core.cli import classifier as classifier_cli
from core.cli import evaluate as evaluate_cli
from core.cli import train as train_cli
from core.data.builtin import load_builtin
from core.metrics.classifiers import (
    ClassifierError,
    accuracy_on,
    load_classifier,
    save_classifier,
    train_classifier,
)


def run(register, argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mmvae")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_a_classifier_learns_saves_and_loads_back_exactly(tmp_path: Path) -> None:
    train, test = load_builtin("digits", "train"), load_builtin("digits", "test")
    network = {"kind": "mlp", "hidden": [64]}
    classifier = train_classifier(train, "image", network, epochs=8, batch_size=64, seed=0)
    assert accuracy_on(classifier, test) > 0.9  # a linear model gets ~0.95 on digits
    folder = save_classifier(classifier, tmp_path / "image", {"dataset": "digits"})
    assert sorted(p.name for p in folder.iterdir()) == ["classifier.json", "model.safetensors"]
    loaded = load_classifier(folder)
    images = test.batch().data["image"]
    assert torch.equal(loaded(images), classifier(images))
    assert json.loads((folder / "classifier.json").read_text())["network"]["hidden"] == [64]
    with pytest.raises(ClassifierError, match=r"takes samples of shape \[1, 8, 8\], got \[64\]"):
        loaded(images.flatten(1))
    (folder / "model.safetensors").unlink()
    with pytest.raises(ClassifierError, match=r"needs classifier\.json and model\.safetensors"):
        load_classifier(folder)


def test_missing_samples_and_labels_are_handled() -> None:
    data = load_builtin("digits", "train").subset(slice(0, 40))
    hidden = data.with_masks({"image": torch.arange(40) % 2 == 0})
    classifier = train_classifier(hidden, "image", {"kind": "mlp", "hidden": [8]}, epochs=1)
    assert 0 <= accuracy_on(classifier, hidden) <= 1
    unlabelled = type(data)(data.data, data.masks, None)
    with pytest.raises(ClassifierError, match="labels: the dataset has no labels"):
        train_classifier(unlabelled, "image")


@pytest.mark.slow
def test_cli_trains_classifiers_that_evaluate_uses_for_coherence(tmp_path: Path, capsys) -> None:
    out = tmp_path / "classifiers"
    argv = ["classifier", "train", "--dataset", "digits", "--output", str(out), "--epochs", "3"]
    assert run(classifier_cli.register, argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report["classifiers"]) == ["image"]  # the label classifies itself
    assert report["classifiers"]["image"]["test_accuracy"] > 0.8
    argv = ["train", "--dataset", "digits", "--epochs", "2", "--output", str(tmp_path / "run"),
            "--latent-dim", "8", "--no-progress"]  # fmt: skip
    assert run(train_cli.register, argv) == 0
    capsys.readouterr()
    model = str(tmp_path / "run" / "model")
    argv = ["evaluate", model, "--dataset", "digits", "--metrics", "coherence"]
    protocol = ["--classifiers", str(out), "--coherence-samples", "3",
                "--metrics", "coherence,clustering",
                "--clustering-fit-split", "train", "--clustering-repeats", "2"]  # fmt: skip
    assert run(evaluate_cli.register, [*argv, *protocol]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    cross = metrics["coherence"]["cross"]
    assert cross["skipped_targets"] == {}
    assert cross["per_subset"]["label"]["image"]["n"] == 3 * 360  # the test split, 3 draws each
    assert (
        metrics["clustering"]["fitted_on"] == "fit_dataset"
        and metrics["clustering"]["repeats"] == 2
    )
    assert run(evaluate_cli.register, argv) == 0
    without = json.loads(capsys.readouterr().out)["metrics"]["coherence"]["cross"]
    assert without["skipped_targets"] == {"image": "no classifier given for this modality"}


def test_a_classifier_loads_from_a_pinned_hub_folder(
    tmp_path: Path, hub_server, new_repo, hf_cache
) -> None:
    """hf://<repo>@<sha>/<folder>: only its JSON and safetensors travel; the sha is required."""
    from core.hub import InvalidModelIdError
    from core.hub.files import hub_files

    data = load_builtin("digits", "train").subset(slice(0, 50))
    classifier = train_classifier(data, "image", {"kind": "mlp", "hidden": [8]}, epochs=1)
    folder = save_classifier(classifier, tmp_path / "image", {"dataset": "digits"})
    repo_id, repo = new_repo
    files = {f"clf/image/{p.name}": p.read_bytes() for p in folder.iterdir()}
    sha = repo.commit({**files, "clf/image/extra.pkl": b"never downloaded"})
    reference = f"hf://{repo_id}@{sha}/clf/image"
    hub = {"endpoint": hub_server.endpoint, "cache_dir": str(hf_cache)}
    loaded = load_classifier(reference, **hub)
    fetched = hub_files(reference, ["classifier.json"], **hub)
    images = data.batch().data["image"]
    assert torch.equal(loaded(images), classifier(images))
    assert not (fetched / "extra.pkl").exists()
    for bad in (
        f"hf://{repo_id}@main/clf/image",
        f"hf://{repo_id}/clf/image",
        f"hf://{repo_id}@{sha}/../x",
    ):
        with pytest.raises(InvalidModelIdError, match="expected hf://"):
            load_classifier(bad)
