"""Clustering of latent codes: k-means on posterior means, Hungarian accuracy and NMI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.metrics.common import batches, dataset_labels, device_of
from core.models.base import MultimodalVAE


def hungarian_accuracy(y_true: np.ndarray | Tensor, y_pred: np.ndarray | Tensor) -> float:
    """Accuracy under the one-to-one cluster -> class mapping that maximises it."""
    t, p = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    _, t_idx = np.unique(t, return_inverse=True)
    _, p_idx = np.unique(p, return_inverse=True)
    counts = np.zeros((p_idx.max() + 1, t_idx.max() + 1), dtype=np.int64)
    np.add.at(counts, (p_idx, t_idx), 1)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / len(t))


def nmi(y_true: np.ndarray | Tensor, y_pred: np.ndarray | Tensor) -> float:
    """Normalised mutual information (arithmetic normalisation, scikit-learn's default)."""
    return float(normalized_mutual_info_score(np.asarray(y_true), np.asarray(y_pred)))


@torch.no_grad()
def posterior_means(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str] | None = None,
    batch_size: int = 256,
) -> Tensor:
    """Mean of each sample's posterior from its observed modalities among `given` [N, D]."""
    model.eval()
    device = device_of(model)
    out = [
        model.encode(b, given, mean=True).z[0].cpu() for b in batches(dataset, batch_size, device)
    ]
    return torch.cat(out)


def _codes(
    model: MultimodalVAE, dataset: MultimodalDataset, given, label_modality, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and classes of the labelled samples observing some of `given`."""
    labels = dataset_labels(dataset, label_modality)
    keep = labels >= 0
    if given is not None:
        keep &= torch.stack([dataset.masks[m] for m in given]).any(0)
    sub = dataset.subset(keep.nonzero().flatten())
    return posterior_means(model, sub, given, batch_size).double().numpy(), labels[keep].numpy()


def clustering(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str] | None = None,
    n_clusters: int | None = None,
    label_modality: str | None = "label",
    seed: int = 0,
    batch_size: int = 256,
    fit_dataset: MultimodalDataset | None = None,
    repeats: int = 1,
) -> dict[str, Any]:
    """k-means (k = number of classes) on posterior means of the joint posterior of `given`
    (default: every modality), scored against the true classes of `dataset`.

    The papers' protocol: fit on `fit_dataset` (the training set) and score `dataset` (the test
    set), `repeats` times with k-means seeded `seed`, `seed + 1`, ...: mean and std over them.
    Without `fit_dataset` the clusters are fitted on `dataset` itself."""
    z, y = _codes(model, dataset, given, label_modality, batch_size)
    z_fit = (
        z
        if fit_dataset is None
        else _codes(model, fit_dataset, given, label_modality, batch_size)[0]
    )
    k = n_clusters or len(np.unique(y))
    runs = []
    for r in range(repeats):
        pred = KMeans(n_clusters=k, n_init=10, random_state=seed + r).fit(z_fit).predict(z)
        runs.append((hungarian_accuracy(y, pred), nmi(y, pred)))
    accuracies, nmis = np.array(runs).T
    return {
        "accuracy": float(accuracies.mean()),
        "nmi": float(nmis.mean()),
        "accuracy_std": float(accuracies.std()),
        "nmi_std": float(nmis.std()),
        "repeats": repeats,
        "fitted_on": "dataset" if fit_dataset is None else "fit_dataset",
        "n_clusters": k,
        "n": len(y),
        "given": list(given) if given is not None else list(model.names),
    }
