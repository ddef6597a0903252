"""Posterior latents of a dataset, per latent space, to fit samplers on."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from core.data.dataset import MultimodalDataset

if TYPE_CHECKING:
    from core.models.base import MultimodalVAE


@torch.no_grad()
def collect_latents(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    spaces: list[str] | None = None,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Posterior means on the CPU, per space [N_space, D] (default: `model.sampled_spaces`),
    from each sample's observed modalities; a space with an `observed` mask (a modality's own
    latent) keeps only the samples that observe it."""
    spaces = list(model.sampled_spaces) if spaces is None else spaces
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts: dict[str, list[Tensor]] = {s: [] for s in spaces}
    try:
        for start in range(0, len(dataset), batch_size):
            batch = dataset.batch(slice(start, start + batch_size)).to(device)
            latent = model.encode(batch, mean=True, generator=_on(generator, device))
            for space in spaces:
                codes = latent.codes[space][0]
                rows = latent.observed.get(space)
                parts[space].append((codes if rows is None else codes[rows]).cpu())
    finally:
        model.train(was_training)
    return {space: torch.cat(p) for space, p in parts.items()}


def _on(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """`generator` if it lives on `device`; otherwise None (only means are kept anyway)."""
    if generator is None or generator.device.type != device.type:
        return None
    return generator
