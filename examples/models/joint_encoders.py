"""Joint-encoder models: a dedicated encoder q(z | all modalities) for complete samples, and
unimodal posteriors trained to match it (JMVAE) or fitted in a second stage while the joint
encoder and decoders stay frozen (TELBO, JNF: multi-stage training, which `Trainer` follows).

    python examples/models/joint_encoders.py --epochs 20
"""

from __future__ import annotations

from typing import Any

from _common import digits_config, parse_args, run

JOINT_ENCODER = {  # the joint encoder's options, shared by the three models
    "joint_encoder": {"kind": "mlp", "hidden": [128, 128]},  # head over the modality features
    "joint_features": None,  # per-modality feature size fed to the head (None: latent_dim)
    "joint_feature_activation": "none",  # or "relu", on each modality's features
}


def models(epochs: int) -> dict[str, dict[str, Any]]:
    """The family's configs, named; the stage lengths follow `epochs` (half joint, half second
    stage) so both stages run whatever the budget."""
    first_stage = max(1, epochs // 2)
    return {
        # JMVAE (Suzuki et al. 2016): joint ELBO + alpha-weighted KL(q(z|X) || q(z|x_m)).
        "jmvae": digits_config("jmvae", alpha=0.1, warmup=first_stage, **JOINT_ENCODER),
        # TELBO (Vedantam et al. 2018): stage "joint" for `warmup` epochs, then "unimodal".
        "telbo": digits_config(
            "telbo",
            warmup=first_stage,  # epochs of the joint stage
            lambda_factors={"image": 1.0, "label": 50.0},  # reconstruction weights, joint ELBO
            gamma_factors=None,  # weights of the unimodal ELBOs of stage 2 (1 each)
            **JOINT_ENCODER,
        ),
        # JNF (Senellart et al. 2023): stage "joint", then stage "flows": each unimodal
        # posterior is its encoder's Gaussian pushed through a masked autoregressive flow.
        "jnf": digits_config(
            "jnf",
            warmup=first_stage,  # epochs of the joint stage
            flow_transforms=2,  # MAF transforms per modality
            flow_hidden=[64, 64],  # hidden sizes of each MADE
            # subsets of 2..M-1 modalities are inferred by Hamiltonian Monte Carlo (with M = 2,
            # as here, never): mcmc_steps HMC steps of n_lf leapfrog steps of size eps_lf
            mcmc_steps=100,
            n_lf=10,
            eps_lf=0.01,
            **JOINT_ENCODER,
        ),
    }


if __name__ == "__main__":
    args = parse_args(__doc__)
    trained = run(models(args.epochs), args)
    for name, model in trained.items():
        print(name, "stages:", [(s.name, s.epochs) for s in model.stages])
