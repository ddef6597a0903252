"""Tiny models trained for a few Adam steps on digits, shared by the sampler and augment tests."""

from __future__ import annotations

import torch

from core.data.builtin import builtin_modalities, load_builtin
from core.data.dataset import MultimodalDataset
from core.models import MVAE, MoPoE, MultimodalVAE

NET = {"kind": "mlp", "hidden": [32]}
FAST_FLOW = {"n_blocks": 2, "hidden": [32], "epochs": 30}


def digits(split: str = "train") -> MultimodalDataset:
    return load_builtin("digits", split)


def train(
    cls: type[MultimodalVAE] = MVAE, steps: int = 150, seed: int = 0, **extra
) -> MultimodalVAE:
    """`cls` (latent_dim 4, MLP [32]) after `steps` Adam steps on the digits train split."""
    torch.manual_seed(seed)
    model = cls(
        {
            "modalities": builtin_modalities("digits"),
            "latent_dim": 4,
            "encoder": NET,
            "decoder": NET,
            **extra,
        }
    )
    data = digits("train")
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    model.set_epoch(10_000)  # past any KL warm-up
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(data), (128,), generator=g)
        loss = model(data.batch(idx)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def train_mopoe(steps: int = 100) -> MultimodalVAE:
    """MoPoE with 2-dimensional private latents per modality."""
    return train(MoPoE, steps=steps, modalities_specific_dim=2)
