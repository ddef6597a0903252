"""What kind of modality a spec describes when it does not say: one rule for model configs
(core/models/config.py) and datasets (what a served model's inputs are decoded as)."""

from __future__ import annotations

from collections.abc import Sequence


def modality_kind(shape: Sequence[int], likelihood_kind: str, declared: str | None = None) -> str:
    """`declared`, else categorical for a categorical likelihood, image for [1 or 3, H, W],
    vector otherwise."""
    if declared is not None:
        return declared
    if likelihood_kind == "categorical":
        return "categorical"
    if len(shape) == 3 and shape[0] in (1, 3):
        return "image"
    return "vector"
