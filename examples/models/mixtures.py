"""Mixture models: the joint posterior is a mixture of the modalities' experts (MMVAE, MMJSD)
or of the products of every subset of them (MoPoE); a sample mixes only the experts it has.

    python examples/models/mixtures.py --epochs 20
"""

from __future__ import annotations

from typing import Any

from _common import digits_config, parse_args, run


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; options not given keep their defaults (README's table)."""
    return {
        # MMVAE (Shi et al. 2019): importance-weighted bound over a mixture of experts.
        "mmvae": digits_config(
            "mmvae",
            K=5,  # importance samples per expert (10 in the paper; each one is decoded)
            loss="dreg_looser",  # DReG gradients; "iwae_looser" for the plain IWAE bound
            prior_and_posterior_dist="laplace_with_softmax",  # or "normal"
            learn_prior=True,  # learn the prior's scale
        ),
        # MMJSD (Sutter et al. 2020): a Jensen-Shannon term towards a dynamic prior.
        "mmjsd": digits_config("mmjsd", alpha=1.0),  # alpha weighs the JS term
        # MoPoE (Sutter et al. 2021): a mixture over the PoEs of all modality subsets.
        "mopoe": digits_config(
            "mopoe",
            subsets=None,  # every non-empty subset; e.g. [["image"], ["image", "label"]]
            mixture_selection="stratified",  # components dealt out evenly across the batch
            modalities_specific_dim=None,  # 2: a private latent per modality ...
            beta_style=1.0,  # ... whose KL weighs beta_style
        ),
        "mopoe-private": digits_config("mopoe", modalities_specific_dim=2, beta_style=1.0),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    run(models(args.epochs), args)
