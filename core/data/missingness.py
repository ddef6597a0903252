"""Missingness generators: hide modalities at random (MCAR) or depending on the class (MNAR).

Both keep at least one modality per sample: when every observed modality of a sample would be
dropped, one of them, chosen uniformly at random, is kept. Entries already missing stay missing.
So on fully observed data with M modalities, MCAR's realised missing rate per modality is
`ratio - ratio**M / M` (0.255 for ratio 0.3 and two modalities), a little below `ratio`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from core.data.dataset import MultimodalDataset


def _keep_one(observed: Tensor, kept: Tensor, generator: torch.Generator) -> Tensor:
    """`kept` ([N, M] bool) with, in each row left empty, one of `observed`'s True entries."""
    scores = torch.rand(observed.shape, generator=generator).masked_fill(~observed, -1.0)
    choice = torch.zeros_like(observed).scatter_(1, scores.argmax(1, keepdim=True), True)
    empty = ~kept.any(1, keepdim=True)
    return kept | (empty & choice & observed)


def _apply(
    dataset: MultimodalDataset, drop: Tensor, generator: torch.Generator, record: dict
) -> MultimodalDataset:
    """Drop the entries where `drop` ([N, M] bool) is True, keeping one per sample."""
    names = dataset.modalities
    observed = torch.stack([dataset.masks[m] for m in names], 1)
    kept = _keep_one(observed, observed & ~drop, generator)
    out = dataset.with_masks({m: kept[:, j].clone() for j, m in enumerate(names)})
    out.metadata = {**dataset.metadata, "missingness": record}
    return out


def mcar(dataset: MultimodalDataset, ratio: float, seed: int = 0) -> MultimodalDataset:
    """Drop each (sample, modality) entry independently with probability `ratio`.

    Seeded: the same seed gives the same masks. See the module docstring for the kept-one rule.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio: must be in [0, 1), got {ratio}")
    generator = torch.Generator().manual_seed(seed)
    drop = torch.rand((len(dataset), len(dataset.modalities)), generator=generator) < ratio
    return _apply(dataset, drop, generator, {"kind": "mcar", "ratio": float(ratio), "seed": seed})


def mnar(
    dataset: MultimodalDataset, probabilities: dict[str, Sequence[float]], seed: int = 0
) -> MultimodalDataset:
    """Drop modality `m` of a sample of class `c` with probability `probabilities[m][c]`.

    Modalities not named are never dropped. Needs class labels; seeded like `mcar`.
    """
    if dataset.labels is None:
        raise ValueError("mnar: the dataset has no labels; missing-not-at-random needs classes")
    labels = dataset.labels
    if len(labels) and int(labels.min()) < 0:
        raise ValueError(f"labels: class labels must be non-negative, got {int(labels.min())}")
    n_classes = int(labels.max()) + 1 if len(labels) else 0
    table = torch.zeros(len(dataset.modalities), max(n_classes, 1), dtype=torch.float64)
    for name, probs in probabilities.items():
        if name not in dataset.modalities:
            raise ValueError(f"probabilities: no modality named {name!r} ({dataset.modalities})")
        probs = [float(p) for p in probs]
        if len(probs) != n_classes:
            raise ValueError(
                f"probabilities[{name!r}]: expected one probability per class "
                f"({n_classes}), got {len(probs)}"
            )
        if any(not 0.0 <= p <= 1.0 for p in probs):
            raise ValueError(f"probabilities[{name!r}]: each must be in [0, 1], got {probs}")
        table[dataset.modalities.index(name), :n_classes] = torch.tensor(probs)
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand((len(dataset), len(dataset.modalities)), generator=generator)
    drop = uniform.double() < table[:, labels].T
    record = {
        "kind": "mnar",
        "probabilities": {m: [float(p) for p in ps] for m, ps in probabilities.items()},
        "seed": seed,
    }
    return _apply(dataset, drop, generator, record)
