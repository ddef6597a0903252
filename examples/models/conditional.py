"""Conditional models: CVAE (Sohn et al. 2015) generates one main modality given the others,
q(z | x_main, c), p(z | c), p(x_main | z, c); it needs every condition and samples nothing
unconditionally. Its likelihood is the conditional log p(x_main | c).

    python examples/models/conditional.py --epochs 20
"""

from __future__ import annotations

from typing import Any

import torch
from _common import digits_config, parse_args, run

from core.data import load_builtin


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """Both directions on digits: images given their label, and labels given their image."""
    return {
        "cvae-image|label": digits_config(
            "cvae",
            main_modality="image",  # the modality generated
            conditioning_modalities=["label"],  # what it is generated from (default: the rest)
            condition_features=32,  # features extracted from each condition
            posterior_network={"kind": "mlp", "hidden": [128, 128]},  # q(z | x_main, c)
            prior_network={"kind": "mlp", "hidden": [64]},  # p(z | c); None: N(0, I)
        ),
        "cvae-label|image": digits_config(
            "cvae", main_modality="label", conditioning_modalities=["image"]
        ),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    if "cvae-image|label" in trained:
        model = trained["cvae-image|label"]
        test = load_builtin("digits", "test").batch()
        g = torch.Generator().manual_seed(args.seed)
        images = model.generate(test, given=["label"], targets=["image"], n_samples=3, generator=g)
        print("images given labels:", list(images["image"].shape))  # [S, B, 1, 8, 8]
        print("labels from images:", model.generation_error(["image"], ["label"]))
