"""Multi-view autoencoders (multi-view-AE's models): a posterior per modality decoded into every
modality (mcVAE, DVCCA), and deterministic autoencoders (AE, DCCAE; mAAE and mWAE match their
codes to N(0, I) adversarially). The deterministic ones define no likelihood (test NLL n/a);
those without a prior sample through a latent sampler fitted on their codes.

    python examples/models/multiview_ae.py --epochs 20
"""

from __future__ import annotations

from typing import Any

import torch
from _common import data, digits_config, parse_args, run

from core.samplers import build_sampler


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; options not given keep their defaults (README's table)."""
    return {
        # mcVAE (Antelmi et al. 2019): every decoder decodes every modality's latent.
        "mcvae": digits_config("mcvae", beta=1.0),
        "mcvae-sparse": digits_config("mcvae", sparse=True, threshold=0.9),  # dropout latents
        # DVCCA (Wang et al. 2016): the shared latent from one modality only.
        "dvcca": digits_config("dvcca", encoded_modality="image"),
        "dvcca-private": digits_config(  # VCCA-private: plus a private latent per modality
            "dvcca", encoded_modality="image", modalities_specific_dim=2
        ),
        # AE: deterministic codes, cross-reconstruction; no prior.
        "ae": digits_config("ae"),
        # DCCAE (Wang et al. 2015): own-modality reconstruction + canonical correlation of codes.
        "dccae": digits_config(
            "dccae",
            reconstruction_weight=1.0,  # multi-view-AE's _lambda
            cca_ridge=1e-3,  # regularises the within-view covariances
            cca_components=None,  # canonical correlations maximised (latent_dim)
        ),
        # mAAE: a discriminator tells prior draws from codes; three phases per batch.
        "maae": digits_config(
            "maae",
            discriminator={"kind": "mlp", "hidden": [64, 64]},
            discriminator_learning_rate=None,  # None: TrainerConfig's learning rate
            generator_learning_rate=None,
        ),
        # mWAE: a WGAN critic with weight clipping, or the MMD penalty (one loss).
        "mwae": digits_config("mwae", penalty="critic", clip_value=0.01),
        "mwae-mmd": digits_config("mwae", penalty="mmd", mmd_weight=1.0),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    if "dccae" in trained:  # its codes are correlated, not shared: no cross-modal generation
        print("dccae image -> label:", trained["dccae"].generation_error(["image"], ["label"]))
    if "ae" in trained:  # no prior: fit a Gaussian mixture on the codes, then sample from it
        model, (train, _) = trained["ae"], data(args)
        g = torch.Generator().manual_seed(args.seed)
        sampler = build_sampler("gmm", n_components=10).fit(model, train, generator=g)
        labels = model.sample(8, sampler=sampler, generator=g)["label"].argmax(-1)
        print("ae samples through its fitted GMM, labels:", labels.tolist())
