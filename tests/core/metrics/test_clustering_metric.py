"""Clustering: Hungarian accuracy is permutation-invariant; k-means on posterior means."""

from __future__ import annotations

import numpy as np
import pytest

from core.metrics import clustering, hungarian_accuracy, nmi


def test_permuted_perfect_clustering_scores_one():
    y = np.repeat(np.arange(5), 20)
    perm = np.array([3, 0, 4, 1, 2])
    assert hungarian_accuracy(y, perm[y]) == 1.0
    assert nmi(y, perm[y]) == pytest.approx(1.0)


def test_partial_and_random_clusterings():
    y = np.array([0, 0, 0, 1, 1, 1])
    assert hungarian_accuracy(y, np.array([1, 1, 0, 0, 0, 0])) == pytest.approx(5 / 6)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 4000)
    assert hungarian_accuracy(y, rng.integers(0, 4, 4000)) < 0.3
    assert nmi(y, rng.integers(0, 4, 4000)) < 0.01


def test_trained_models(trained, dataset):
    report = clustering(trained, dataset, seed=0)
    assert report["n_clusters"] == 4 and report["n"] == len(dataset)
    assert 0.25 <= report["accuracy"] <= 1.0 and 0.0 <= report["nmi"] <= 1.0
    again = clustering(trained, dataset, seed=0)
    assert again == report
    image_only = clustering(trained, dataset, given=["image"])
    assert image_only["given"] == ["image"]


def test_fitted_on_training_codes_scored_on_test_codes_over_repeats(trained, dataset):
    train, test = (
        dataset.subset(slice(0, len(dataset) // 2)),
        dataset.subset(slice(len(dataset) // 2, None)),
    )
    report = clustering(trained, test, fit_dataset=train, repeats=3, seed=5)
    assert (
        report["fitted_on"] == "fit_dataset" and report["n"] == len(test) and report["repeats"] == 3
    )
    singles = [clustering(trained, test, fit_dataset=train, seed=s)["accuracy"] for s in (5, 6, 7)]
    assert report["accuracy"] == pytest.approx(np.mean(singles))
    assert report["accuracy_std"] == pytest.approx(np.std(singles))
    assert clustering(trained, test, seed=5)["fitted_on"] == "dataset"
