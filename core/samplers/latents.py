"""Posterior latents of a dataset, per latent space, to fit samplers on."""

from __future__ import annotations

import torch
from torch import Tensor

from core.data.dataset import MultimodalDataset
from core.models.base import MultimodalVAE
from core.samplers.base import SHARED, private_space


def latent_dims(model: MultimodalVAE) -> dict[str, int]:
    """{"shared": D, "private.<m>": D_m for each modality with a private latent}."""
    dims = {SHARED: int(model.latent_dim)}
    dims.update({private_space(m): int(d) for m, d in model.private_dims.items() if d})
    return dims


@torch.no_grad()
def collect_latents(
    model: MultimodalVAE,
    dataset: MultimodalDataset,
    batch_size: int = 256,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Posterior means on the CPU: shared z [N, D] from each sample's observed modalities, and
    each private latent [N_m, D_m] from the samples that observe modality m."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    shared, private = [], {m: [] for m, d in model.private_dims.items() if d}
    try:
        for start in range(0, len(dataset), batch_size):
            batch = dataset.batch(slice(start, start + batch_size)).to(device)
            latent = model.encode(batch, mean=True, generator=_on(generator, device))
            shared.append(latent.z[0].cpu())
            for m in private:
                private[m].append(latent.private[m][0][batch.masks[m]].cpu())
    finally:
        model.train(was_training)
    out = {SHARED: torch.cat(shared)}
    out.update({private_space(m): torch.cat(v) for m, v in private.items()})
    return out


def _on(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
    """`generator` if it lives on `device`; otherwise None (private draws are discarded anyway)."""
    if generator is None or generator.device.type != device.type:
        return None
    return generator
