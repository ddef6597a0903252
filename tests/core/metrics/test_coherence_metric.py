"""Coherence: a perfect generator scores 1, a shuffled one chance; balanced accuracy apart."""

from __future__ import annotations

import pytest
import torch
from metric_fixtures import N_CLASSES, classify_image, make_dataset

from core.metrics import accuracy, balanced_accuracy, cross_coherence, joint_coherence

CLASSIFIERS = {"image": classify_image}


def test_perfect_generator_is_fully_coherent(stub_factory):
    model, ds = stub_factory(), make_dataset(200)
    report = cross_coherence(model, ds, CLASSIFIERS)
    assert report["per_subset"]["image"]["label"]["accuracy"] == 1.0
    assert report["per_subset"]["label"]["image"]["accuracy"] == 1.0
    assert report["accuracy"] == 1.0 and report["balanced_accuracy"] == 1.0
    assert report["by_subset_size"]["1"]["accuracy_mean"] == 1.0
    assert report["by_subset_size"]["1"]["accuracy_std"] == 0.0
    assert joint_coherence(model, 100, CLASSIFIERS)["joint_coherence"] == 1.0


def test_several_generations_per_sample_are_each_scored_with_per_class_details(stub_factory):
    ds = make_dataset(200)
    perfect = cross_coherence(stub_factory(), ds, CLASSIFIERS, n_samples=3)
    entry = perfect["per_subset"]["label"]["image"]
    assert entry["n"] == 3 * 200 and entry["accuracy"] == 1.0
    assert set(entry["per_class"]) == {str(c) for c in range(N_CLASSES)}
    shuffled = cross_coherence(stub_factory(shuffle=True), ds, CLASSIFIERS, n_samples=4)
    entry = shuffled["per_subset"]["label"]["image"]
    counts = torch.bincount(ds.labels, minlength=N_CLASSES).double() * 4
    weighted = sum(entry["per_class"][str(c)] * counts[c] for c in range(N_CLASSES)) / counts.sum()
    assert float(weighted) == pytest.approx(entry["accuracy"])  # recalls weighted by class size


def test_shuffled_generator_is_at_chance(stub_factory):
    model, ds = stub_factory(shuffle=True), make_dataset(2000)
    report = cross_coherence(model, ds, CLASSIFIERS)
    assert report["accuracy"] == pytest.approx(1 / N_CLASSES, abs=0.04)
    joint = joint_coherence(model, 2000, CLASSIFIERS)["joint_coherence"]
    assert joint == pytest.approx(1 / N_CLASSES, abs=0.04)


def test_balanced_accuracy_is_reported_separately_and_differs_when_imbalanced():
    y_true = torch.tensor([0] * 90 + [1] * 10)
    y_pred = torch.zeros(100, dtype=torch.long)
    assert accuracy(y_true, y_pred) == pytest.approx(0.9)
    assert balanced_accuracy(y_true, y_pred) == pytest.approx(0.5)


def test_imbalanced_dataset_through_cross_coherence(stub_factory):
    ds = make_dataset(400)
    keep = torch.cat([(ds.labels == 0).nonzero().flatten(), (ds.labels == 1).nonzero()[:10, 0]])
    ds = ds.subset(keep)  # 100 of class 0, 10 of class 1

    class Constant(stub_factory):
        def _classes(self, y):
            return torch.zeros_like(y)

    entry = cross_coherence(Constant(), ds, CLASSIFIERS)["per_subset"]["image"]["label"]
    assert entry["accuracy"] == pytest.approx(100 / 110)
    assert entry["balanced_accuracy"] == pytest.approx(0.5)


def test_label_modality_classifies_itself_and_unclassified_targets_are_skipped(stub_factory):
    report = cross_coherence(stub_factory(), make_dataset(40))
    assert list(report["per_subset"]) == ["image"]  # image -> label only
    assert "image" in report["skipped_targets"]
    assert joint_coherence(stub_factory(), 10)["joint_coherence"] is None


def test_only_samples_observing_the_given_modalities_are_used(stub_factory):
    ds = make_dataset(140, missing=True)
    report = cross_coherence(stub_factory(), ds, CLASSIFIERS)
    assert report["per_subset"]["image"]["label"]["n"] == int(ds.masks["image"].sum())
    assert report["per_subset"]["label"]["image"]["n"] == int(ds.masks["label"].sum())


def test_trained_models(trained, dataset):
    g = torch.Generator().manual_seed(0)
    report = cross_coherence(trained, dataset, CLASSIFIERS, generator=g)
    for subset in ("image", "label"):
        for target, entry in report["per_subset"][subset].items():
            if target != "mean":
                assert 0.0 <= entry["accuracy"] <= 1.0
                assert 0.0 <= entry["balanced_accuracy"] <= 1.0
    assert report["per_subset"]["image"]["label"]["accuracy"] > 0.5
    joint = joint_coherence(trained, 200, CLASSIFIERS, generator=g)
    assert 0.0 <= joint["joint_coherence"] <= 1.0
