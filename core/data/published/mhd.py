"""MHD, the Multimodal Handwritten Digits of Vasco et al. (2022): one digit as an image, the pen
trajectory that drew it, a spoken-digit spectrogram and its label.

Files, as published (no checksum is published): `mhd_train.pt` from
https://docs.google.com/uc?export=download&id=1Tj1i-hXA0INQpU0jmuTMO4IwfDoGD2oV and `mhd_test.pt`
from https://docs.google.com/uc?export=download&id=1qiEjFNCFn1ws383pKmY3zJtm4JDymOU6 (the links
MultiVae and GMC use), put side by side in `root`. Each is a `torch.save` of the tuple (labels,
images, trajectories, audio, trajectory normalisation, audio normalisation); it is read by
core/data/published/torch_files.py, which never unpickles, and its tensors stay on disk
(memory-mapped) until batches read them.

Modalities as MultiVae builds them: `image` [1, 28, 28], `label` (one-hot [10]), `trajectory`
[D], `audio` — stored [C, H, W], read as [1, W, C·H] (its C blocks stacked, then transposed).
Sizes are taken from the files; values are used as stored (they come normalised).

Missing data (MultiVae's missing-not-at-random protocol): `missing_probabilities` maps a
modality to ten per-class probabilities of being missing; the i-th selected modality, in the
order image, label, trajectory, audio, is observed where a Bernoulli(1 − p[label]) draw with
`torch.Generator().manual_seed(seed + i)` gives 1 — the masks MultiVae draws. A sample that
draws no modality at all is dropped (it has nothing to learn from; MultiVae keeps it as zeros);
`keep_incomplete=False` keeps only the samples that drew every modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.dataset import DatasetError
from core.data.published.torch_files import read_torch_file
from core.data.rows import ArrayRows, InMemory

ORDER = ("image", "label", "trajectory", "audio")  # MultiVae's insertion order (mask seeds)
CLASSES = 10


class Spectrograms:
    """MHD's audio rows [C, H, W] as MultiVae reads them: [1, W, C·H]."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        n, c, h, w = array.shape
        self.shape, self.dtype = (n, 1, w, c * h), array.dtype

    def read(self, rows: np.ndarray) -> np.ndarray:
        x = self.array[rows]
        n, c, h, w = x.shape
        return x.reshape(n, c * h, w).transpose(0, 2, 1)[:, None]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    """The four data arrays of one split file, their shapes checked."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing (MHD's mhd_train.pt and mhd_test.pt, see docstring)")
    content = read_torch_file(path)
    if not isinstance(content, tuple) or len(content) != 6:
        raise DatasetError(f"{path.name}: expected MHD's 6-tuple, got {type(content).__name__}")
    labels, images, trajectories, audio = content[:4]
    arrays = {"labels": labels, "image": images, "trajectory": trajectories, "audio": audio}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise DatasetError(f"{path.name}: {name} is not a tensor")
    n = len(labels)
    if images.ndim == 3:
        images = arrays["image"] = images[:, None]
    expected = {"labels": 1, "image": 4, "trajectory": 2, "audio": 4}
    for name, array in arrays.items():
        if array.ndim != expected[name] or len(array) != n:
            raise DatasetError(
                f"{path.name}: {name} has shape {list(array.shape)}, expected "
                f"{expected[name]} dimensions and {n} samples"
            )
    if images.shape[1:] != (1, 28, 28):
        raise DatasetError(f"{path.name}: images of shape {list(images.shape[1:])}, not 1x28x28")
    return arrays


def _masks(
    labels: torch.Tensor, chosen: list[str], probabilities: dict[str, Any], seed: int
) -> dict[str, torch.Tensor]:
    masks = {}
    for i, name in enumerate(chosen):
        p = probabilities.get(name, [0.0] * CLASSES)
        missing = torch.tensor(p, dtype=torch.float32)
        generator = torch.Generator().manual_seed(seed + i)
        masks[name] = torch.bernoulli(1 - missing[labels], generator=generator).bool()
    return masks


def _check_probabilities(probabilities: dict[str, Any], chosen: list[str]) -> None:
    for name, p in probabilities.items():
        if name not in chosen:
            raise ValueError(f"missing_probabilities: {name!r} is not one of {chosen}")
        ok = isinstance(p, list | tuple) and len(p) == CLASSES
        if not ok or not all(isinstance(v, int | float) and 0 <= v <= 1 for v in p):
            raise ValueError(
                f"missing_probabilities.{name}: needs {CLASSES} per-class probabilities in [0, 1]"
            )


def load_mhd(
    root: str | Path,
    split: str = "train",
    modalities: list[str] | None = None,
    missing_probabilities: dict[str, list[float]] | None = None,
    keep_incomplete: bool = True,
    seed: int = 0,
) -> ArrayRows:
    """MHD's `split` ("train" or "test") from `root/mhd_<split>.pt`, restricted to
    `modalities` (default all four), with MultiVae's class-dependent missingness."""
    if split not in ("train", "test"):
        raise ValueError(f"split: {split!r} is not one of ['test', 'train']")
    chosen = [m for m in ORDER if m in (modalities or ORDER)]
    unknown = sorted(set(modalities or ()) - set(ORDER))
    if unknown or not chosen:
        raise ValueError(f"modalities: {unknown or modalities} not among {list(ORDER)}")
    probabilities = missing_probabilities or {}
    _check_probabilities(probabilities, chosen)
    arrays = _arrays(Path(root) / f"mhd_{split}.pt")
    labels_array = np.asarray(arrays["labels"]).astype(np.int64)
    if labels_array.min() < 0 or labels_array.max() >= CLASSES:
        raise DatasetError(f"mhd_{split}.pt: labels outside 0..{CLASSES - 1}")
    sources = {
        "image": lambda: InMemory(arrays["image"]),
        "label": lambda: InMemory(np.eye(CLASSES, dtype=np.float32)[labels_array]),
        "trajectory": lambda: InMemory(arrays["trajectory"]),
        "audio": lambda: Spectrograms(arrays["audio"]),
    }
    views = {m: sources[m]() for m in chosen}
    labels = torch.from_numpy(labels_array)
    masks = _masks(labels, chosen, probabilities, seed) if any(
        any(p) for p in probabilities.values()
    ) else None  # fmt: skip
    rows = np.arange(len(labels_array))
    dropped = 0
    if masks is not None:
        stacked = torch.stack(list(masks.values()))
        keep = stacked.all(0) if not keep_incomplete else stacked.any(0)
        dropped = int((~stacked.any(0)).sum())
        rows = keep.nonzero().squeeze(1).numpy()
        masks = {m: k[rows] for m, k in masks.items()}
    return ArrayRows(
        views,
        index={m: rows for m in chosen},
        masks=masks,
        labels=labels_array[rows],
        specs=_specs(views),
        metadata={
            "dataset": "mhd",
            "split": split,
            "modalities": chosen,
            "missing_probabilities": probabilities,
            "keep_incomplete": keep_incomplete,
            "seed": seed,
            "dropped_unobserved": dropped,
        },
    )


def _specs(views: dict[str, Any]) -> list[dict]:
    """The modality specs, shapes from the files."""
    kinds = {
        "image": {"kind": "image", "likelihood": {"kind": "laplace", "scale": 0.1}},
        "label": {"kind": "categorical", "likelihood": {"kind": "categorical"}},
        "trajectory": {"kind": "vector", "likelihood": {"kind": "normal"}},
        "audio": {"kind": "vector", "likelihood": {"kind": "normal"}},
    }
    return [{"name": m, "shape": list(v.shape[1:]), **kinds[m]} for m, v in views.items()]
