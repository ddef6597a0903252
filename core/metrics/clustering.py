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


def clustering(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    given: Sequence[str] | None = None,
    n_clusters: int | None = None,
    label_modality: str | None = "label",
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """k-means (k = number of classes, seeded) on posterior means of the joint posterior of
    `given` (default: every modality), scored against the true classes."""
    labels = dataset_labels(dataset, label_modality)
    keep = labels >= 0
    if given is not None:
        keep &= torch.stack([dataset.masks[m] for m in given]).any(0)
    sub = dataset.subset(keep.nonzero().flatten())
    y = labels[keep].numpy()
    z = posterior_means(model, sub, given, batch_size).double().numpy()
    k = n_clusters or len(np.unique(y))
    pred = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(z)
    return {
        "accuracy": hungarian_accuracy(y, pred),
        "nmi": nmi(y, pred),
        "n_clusters": k,
        "n": len(y),
        "given": list(given) if given is not None else list(model.names),
    }
