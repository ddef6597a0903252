"""Product-of-experts models: one Gaussian expert per modality, the joint posterior their
product, so any subset of observed modalities fuses in closed form (a missing one drops out).

    python examples/models/product_of_experts.py --epochs 20
"""

from __future__ import annotations

from typing import Any

from _common import digits_config, parse_args, run


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; options not given keep their defaults (README's table)."""
    return {
        # MVAE (Wu & Goodman 2018): the product includes the N(0, I) prior as an expert.
        "mvae": digits_config(
            "mvae",
            use_subsampling=True,  # add every modality's own ELBO to the joint one
            k=0,  # ... and the ELBOs of k random subsets of size 2..M-1 (none with M = 2)
            warmup=max(1, epochs // 4),  # epochs over which the KL weight beta rises from 0
            annealing="per_step",  # beta grows every step (MultiVae); "per_epoch": once an epoch
            beta=1.0,
        ),
        # multi-view-AE's options on the same model: the mean of the experts, sparse latents.
        "mvae-mean": digits_config("mvae", join_type="mean", use_prior=False, warmup=0),
        "mvae-sparse": digits_config(
            "mvae",
            sparse=True,  # variational-dropout experts, one learnable dropout rate per dimension
            threshold=0.9,  # dimensions whose dropout rate reaches 0.9 are zeroed at prediction
            warmup=0,
        ),
        # MVTCAE (Hwang et al. 2021): PoE without a prior expert, a total-correlation objective;
        # alpha trades its two KL terms (to the unimodal posteriors, to the prior).
        "mvtcae": digits_config("mvtcae", alpha=0.1, beta=2.5),
        # CRMVAE: each modality also reconstructed from its own unimodal code (consistency).
        "crmvae": digits_config("crmvae", beta=2.5),
        # me_mVAE (multi-view-AE): the joint ELBO plus every modality's own ELBO.
        "me_mvae": digits_config("me_mvae", join_type="poe", beta=1.0),  # or join_type="mean"
        # gPoE: learnable per-modality, per-dimension expert weights, kept in [0, 1];
        # modalities_specific_dim=2 would add a private latent per modality.
        "gpoe": digits_config("gpoe", beta=1.0, modalities_specific_dim=None),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    if "mvae-sparse" in trained:  # which latent dimensions survive the dropout threshold
        kept = trained["mvae-sparse"].kept_dimensions()
        print(f"mvae-sparse keeps {len(kept)} of 16 latent dimensions: {kept}")
