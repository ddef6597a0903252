"""Models with private latents: a shared code for what the modalities have in common and a
private code per modality for the rest (style), so generation can keep one and redraw the other.

    python examples/models/private_latents.py --epochs 20
"""

from __future__ import annotations

from typing import Any

import torch
from _common import digits_config, parse_args, run

from core.data import load_builtin
from core.metrics import nmi


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; options not given keep their defaults (README's table)."""
    return {
        # DMVAE (Lee & Pavlovic 2021): shared PoE + private latents, joint and cross ELBOs.
        "dmvae": digits_config(
            "dmvae",
            modalities_specific_dim=2,  # one size, or {"image": 4, "label": 1}
            modalities_specific_betas={"image": 1.0, "label": 1.0},  # KL weight of each
        ),
        # weighted DMVAE (multi-view-AE): the shared PoE with learnable expert weights (as gPoE).
        "weighted_dmvae": digits_config("weighted_dmvae", modalities_specific_dim=2),
        # MMVAE+ (Palumbo et al. 2023): a mixture over the shared code, private codes with
        # learnable auxiliary priors r_m for the modalities a sample is not given.
        "mmvae_plus": digits_config(
            "mmvae_plus",
            K=5,  # importance samples per expert
            modalities_specific_dim=2,
            learn_modality_prior=True,  # learn the scales of the r_m
            reconstruction_option="single_prior",  # a missing private code from r_m; or
            # "joint_prior": from the prior p (MultiVae 1.0.3's default)
            prior_and_posterior_dist="laplace_with_softmax",
        ),
        # CMVAE (Palumbo et al. 2024): MMVAE+ with a clustered shared prior (learned weights
        # and means), so the model also clusters its inputs.
        "cmvae": digits_config("cmvae", K=5, modalities_specific_dim=2, number_of_clusters=10),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    if "cmvae" in trained:  # clusters from the images alone, against the digit classes
        test = load_builtin("digits", "test").batch()
        g = torch.Generator().manual_seed(args.seed)
        clusters, _ = trained["cmvae"].predict_clusters(test, given=["image"], generator=g)
        score = nmi(test.labels, clusters)
        print(f"cmvae clusters of the test images: NMI with the classes {score:.3f}")
