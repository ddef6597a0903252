"""Helpers shared by the metrics: batching a dataset, ground-truth labels, subsets, JSON-safety."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from core.data.batch import Batch
from core.data.dataset import MultimodalDataset
from core.models.base import MultimodalVAE

Classifier = Callable[[Tensor], Tensor]
"""Maps a batch of one modality [B, *shape] to class indices [B] (or class scores [B, C])."""


def device_of(model: MultimodalVAE) -> torch.device:
    """The device the model's weights live on (CPU for a model without parameters)."""
    for t in itertools.chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


def make_generator(seed: int | None, model: MultimodalVAE) -> torch.Generator | None:
    """A generator on the model's device seeded with `seed` (None: the global RNG)."""
    if seed is None:
        return None
    return torch.Generator(device=device_of(model)).manual_seed(int(seed))


def batches(
    dataset: MultimodalDataset,
    batch_size: int,
    device: torch.device | None = None,
    select: Tensor | None = None,
) -> Iterator[Batch]:
    """The dataset (or its samples at the indices `select`) in order, `batch_size` at a time."""
    idx = torch.arange(len(dataset)) if select is None else select
    for start in range(0, len(idx), batch_size):
        b = dataset.batch(idx[start : start + batch_size])
        yield b if device is None else b.to(device)


def observed_all(dataset: MultimodalDataset, modalities: Sequence[str]) -> Tensor:
    """Indices of the samples in which every one of `modalities` is observed."""
    keep = torch.ones(len(dataset), dtype=torch.bool)
    for m in modalities:
        keep &= dataset.masks[m]
    return keep.nonzero().flatten()


def to_classes(out: Tensor) -> Tensor:
    """Class indices [B] from a classifier output: indices [B] or scores [B, C]."""
    return out.argmax(-1) if out.ndim == 2 else out.long()


def dataset_labels(dataset: MultimodalDataset, label_modality: str | None = "label") -> Tensor:
    """Ground-truth classes [N]: `dataset.labels`, else the argmax of the label modality.

    Samples whose class is unknown (label modality missing and no labels) hold -1.
    """
    if dataset.labels is not None:
        return dataset.labels.clone()
    if label_modality and label_modality in dataset.data:
        y = dataset.data[label_modality].flatten(1).argmax(-1)
        return torch.where(dataset.masks[label_modality], y, torch.full_like(y, -1))
    raise ValueError(
        f"labels: the dataset has no labels and no {label_modality!r} modality to read them from"
    )


def has_labels(dataset: MultimodalDataset, label_modality: str | None = "label") -> bool:
    return dataset.labels is not None or bool(label_modality and label_modality in dataset.data)


def proper_subsets(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every non-empty proper subset of `names`, smallest first, in `names` order."""
    return [tuple(c) for r in range(1, len(names)) for c in itertools.combinations(list(names), r)]


def subset_key(subset: Sequence[str]) -> str:
    return "+".join(subset)


def modality_kind(model: MultimodalVAE, m: str) -> str:
    """ "image", "categorical" or "vector", as declared in the model's config."""
    return str(model.config.modality(m).kind)


def mean_std(values: Sequence[float]) -> dict[str, float]:
    arr = np.asarray(values, dtype=np.float64)
    return {"mean": float(arr.mean()), "std": float(arr.std())} if len(arr) else {}


def json_safe(value: Any) -> Any:
    """Tensors, numpy values, tuples and paths to plain JSON; NaN and ±inf become None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, Tensor):
        return json_safe(value.detach().cpu().tolist() if value.ndim else value.item())
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        return json_safe(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return str(value)
