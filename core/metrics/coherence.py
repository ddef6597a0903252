"""Coherence: do generated modalities carry the right class? Cross-modal and joint.

Figures are plain accuracy; class-balanced accuracy (mean per-class recall) is reported beside
it under its own name, never in its place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.metrics.common import (
    Classifier,
    batches,
    dataset_labels,
    device_of,
    mean_std,
    modality_kind,
    observed_all,
    proper_subsets,
    subset_key,
    to_classes,
)
from core.models.base import MultimodalVAE


def accuracy(y_true: Tensor, y_pred: Tensor) -> float:
    """Fraction of predictions equal to the truth."""
    return float((y_true == y_pred).double().mean())


def balanced_accuracy(y_true: Tensor, y_pred: Tensor) -> float:
    """Mean over the classes present in `y_true` of the recall of that class."""
    classes = y_true.unique()
    recalls = [(y_pred[y_true == c] == c).double().mean() for c in classes]
    return float(torch.stack(recalls).mean())


def resolve_classifiers(
    model: MultimodalVAE,
    classifiers: Mapping[str, Classifier] | None = None,
    label_modality: str | None = "label",
) -> tuple[dict[str, Classifier], dict[str, str]]:
    """Classifier per modality, and the reason each modality without one is skipped.

    A categorical modality named `label_modality` classifies itself (argmax) unless the caller
    gives a classifier for it.
    """
    given = dict(classifiers or {})
    found: dict[str, Classifier] = {}
    skipped: dict[str, str] = {}
    for m in model.names:
        if m in given:
            found[m] = given[m]
        elif m == label_modality and modality_kind(model, m) == "categorical":
            found[m] = lambda x: x.flatten(1).argmax(-1)
        else:
            skipped[m] = "no classifier given for this modality"
    return found, skipped


def _classify(clf: Classifier, x: Tensor) -> Tensor:
    return to_classes(clf(x)).reshape(-1).cpu()


def _scores(y_true: Tensor, y_pred: Tensor) -> dict[str, Any]:
    """Accuracy, balanced accuracy and each class's recall (`per_class`, the papers' details)."""
    per_class = {
        str(int(c)): float((y_pred[y_true == c] == c).double().mean()) for c in y_true.unique()
    }
    return {
        "accuracy": accuracy(y_true, y_pred),
        "balanced_accuracy": balanced_accuracy(y_true, y_pred),
        "per_class": per_class,
        "n": y_true.numel(),
    }


@torch.no_grad()
def cross_coherence(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    classifiers: Mapping[str, Classifier] | None = None,
    label_modality: str | None = "label",
    subsets: Sequence[Sequence[str]] | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
    n_samples: int = 1,
) -> dict[str, Any]:
    """Generate each other modality from every non-empty proper subset of modalities and
    classify it against the true class. Only samples observing the whole subset are used;
    each gives `n_samples` generations (as the papers: every one is scored).

    Returns per subset and target {accuracy, balanced_accuracy, per_class, n}, the per-subset
    mean over targets, and mean/std over subsets of each size.
    """
    model.eval()
    labels = dataset_labels(dataset, label_modality)
    found, skipped = resolve_classifiers(model, classifiers, label_modality)
    device = device_of(model)
    per_subset: dict[str, dict] = {}
    by_size: dict[int, dict[str, list[float]]] = {}
    for subset in subsets or proper_subsets(model.names):
        targets = [m for m in model.generated if m not in subset and m in found]
        if model.generation_error(subset, targets) is not None:
            continue  # a conditional model generates from its conditioning modalities only
        select = observed_all(dataset, subset)
        select = select[labels[select] >= 0]
        if not targets or not len(select):
            continue
        preds: dict[str, list[Tensor]] = {t: [] for t in targets}
        for b in batches(dataset, batch_size, device, select):
            gen = model.generate(b, subset, targets, n_samples=n_samples, generator=generator)
            for t in targets:  # [S, B, ...] -> classes [S * B], draw-major
                preds[t].append(_classify(found[t], gen[t].flatten(0, 1)).view(n_samples, -1))
        y = labels[select].repeat(n_samples)
        preds = {t: torch.cat(p, 1).flatten() for t, p in preds.items()}
        entry = {t: _scores(y, preds[t]) for t in targets}
        entry["mean"] = {
            name: float(sum(entry[t][name] for t in targets) / len(targets))
            for name in ("accuracy", "balanced_accuracy")
        }
        per_subset[subset_key(subset)] = entry
        size = by_size.setdefault(len(subset), {"accuracy": [], "balanced_accuracy": []})
        for name in size:
            size[name].append(entry["mean"][name])
    summary = {
        str(s): {f"{name}_{k}": v for name, vals in d.items() for k, v in mean_std(vals).items()}
        for s, d in sorted(by_size.items())
    }
    means = [e["mean"] for e in per_subset.values()]
    overall = {
        name: (sum(e[name] for e in means) / len(means) if means else None)
        for name in ("accuracy", "balanced_accuracy")
    }
    return {
        **overall,
        "per_subset": per_subset,
        "by_subset_size": summary,
        "skipped_targets": skipped,
    }


@torch.no_grad()
def joint_coherence(
    model: MultimodalVAE,
    n: int = 1000,
    classifiers: Mapping[str, Classifier] | None = None,
    label_modality: str | None = "label",
    sampler: Any = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, Any]:
    """Fraction of `n` unconditional samples whose modalities are all classified alike.

    Needs classifiers for at least two modalities; modalities without one are left out.
    """
    model.eval()
    reason = model.sampling_error(sampler)
    if reason is not None:
        return {"joint_coherence": None, "skipped": reason}
    found, skipped = resolve_classifiers(model, classifiers, label_modality)
    if len(found) < 2:
        return {"joint_coherence": None, "skipped": "needs classifiers for two modalities"}
    agree = []
    for start in range(0, n, batch_size):
        out = model.sample(min(batch_size, n - start), sampler, list(found), generator)
        preds = torch.stack([_classify(found[m], out[m]) for m in found])  # [M, b]
        agree.append((preds == preds[0]).all(0))
    ok = torch.cat(agree)
    return {
        "joint_coherence": float(ok.double().mean()),
        "n": ok.numel(),
        "modalities": list(found),
        "skipped_modalities": skipped,
    }
