"""Hierarchical models: several latent levels, a top code shared by the modalities above
lower codes (per modality in Nexus, shared by every decoder in MHVAE), generated top-down.

    python examples/models/hierarchical.py --epochs 20
"""

from __future__ import annotations

from typing import Any

import torch
from _common import digits_config, parse_args, run


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; annealing spans half the budget."""
    anneal = max(1, epochs // 2)
    return {
        # Nexus (Vasco et al. 2022): a bottom VAE per modality (`private/<m>`), a top latent
        # (`shared`) from the mean of the observed modalities' messages.
        "nexus": digits_config(
            "nexus",
            modalities_specific_dim=16,  # size of each bottom latent (or one per modality)
            msg_dim=10,  # size of each modality's message to the top level
            dropout_rate=0.5,  # forced perceptual dropout: messages dropped in training
            top_beta=0.1,  # weight of the top KL
            bottom_betas={"image": 0.5, "label": 0.5},  # weights of the bottom KLs
            warmup=anneal,  # epochs over which the top terms rise to full weight
            top_network={"kind": "mlp", "hidden": [128]},
        ),
        # MHVAE (Dorent et al. 2023): n_latent levels, each the PoE of its prior and the
        # given modalities' experts; trained over every subset of modalities in one pass.
        "mhvae": digits_config(
            "mhvae",
            n_latent=3,  # levels level/0 (top, latent_dim) .. level/2 (bottom)
            level_dims=[8, 8],  # sizes below the top, top-down
            feature_dim=64,  # size of the skip connections
            block_network={"kind": "mlp", "hidden": [64]},
            warmup=anneal,  # KL annealing: without it the model collapses on digits
            beta=0.5,
        ),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    for name, model in trained.items():  # the levels: size, and whether the prior is conditional
        spaces = model.describe_latent_spaces().items()
        print(
            name,
            {s: (d["dim"], "p(.|above)" if d["conditional"] else "N(0, I)") for s, d in spaces},
        )
        images = model.sample(4, generator=torch.Generator().manual_seed(args.seed))["image"]
        print(name, "top-down samples:", list(images.shape))
