"""Small model configurations covering every model and its option variants."""

from __future__ import annotations

import torch

from core.data.batch import Batch
from core.models.registry import MODEL_REGISTRY
from tests.core.models.hook_models import HOOK_MODELS

MODALITIES = [
    {"name": "image", "shape": [1, 8, 8], "likelihood": {"kind": "bernoulli"}},
    {"name": "label", "shape": [10], "likelihood": {"kind": "categorical"}},
]
SMALL = {
    "latent_dim": 4,
    "encoder": {"kind": "mlp", "hidden": [32]},
    "decoder": {"kind": "mlp", "hidden": [32]},
}

VARIANTS = {
    "mvae": {"model_type": "mvae"},
    "mvae_k": {
        "model_type": "mvae",
        "k": 2,
        "modalities": [*MODALITIES, {"name": "extra", "shape": [3]}],
    },
    "mvae_mean_join": {"model_type": "mvae", "join_type": "mean"},
    "mvae_no_prior": {"model_type": "mvae", "use_prior": False},
    "mvae_sparse": {"model_type": "mvae", "sparse": True, "threshold": 0.9},
    "jmvae": {
        "model_type": "jmvae",
        "joint_features": 16,
        "joint_encoder": {"kind": "mlp", "hidden": [32]},
    },
    "telbo": {
        "model_type": "telbo",
        "warmup": 1,
        "joint_features": 16,
        "joint_encoder": {"kind": "mlp", "hidden": [32]},
        "gamma_factors": {"image": 0.5},
    },
    "jnf": {
        "model_type": "jnf",
        "warmup": 1,
        "joint_features": 16,
        "joint_encoder": {"kind": "mlp", "hidden": [32]},
        "flow_hidden": [16],
    },
    "jnf_three_modalities": {
        "model_type": "jnf",
        "warmup": 1,
        "modalities": [*MODALITIES, {"name": "extra", "shape": [3]}],
        "flow_hidden": [16],
        "mcmc_steps": 3,
        "n_lf": 2,
        "normaliser_draws": 50,
        "moment_draws": 4,
    },
    "nexus": {
        "model_type": "nexus",
        "modalities_specific_dim": 3,
        "top_network": {"kind": "mlp", "hidden": [16]},
        "warmup": 1,
    },
    "nexus_dropout_adapted": {
        "model_type": "nexus",
        "modalities_specific_dim": {"image": 4, "label": 2},
        "top_network": {"kind": "mlp", "hidden": [16]},
        "dropout_rate": 0.5,
        "adapt_top_decoder_variance": ["image"],
        "gammas": {"label": 2.0},
        "bottom_betas": {"image": 0.5},
    },
    "mhvae": {
        "model_type": "mhvae",
        "feature_dim": 16,
        "block_network": {"kind": "mlp", "hidden": [16]},
    },
    "mhvae_three_modalities": {
        "model_type": "mhvae",
        "n_latent": 3,
        "level_dims": [3, 5],
        "feature_dim": 8,
        "block_network": {"kind": "mlp", "hidden": []},
        "modalities": [*MODALITIES, {"name": "extra", "shape": [3]}],
    },
    "cvae": {
        "model_type": "cvae",
        "main_modality": "image",
        "condition_features": 8,
        "posterior_network": {"kind": "mlp", "hidden": [32]},
    },
    "cvae_prior_network": {
        "model_type": "cvae",
        "main_modality": "image",
        "condition_features": 8,
        "posterior_network": {"kind": "mlp", "hidden": [32]},
        "prior_network": {"kind": "mlp", "hidden": [16]},
    },
    "mmvae_dreg_laplace": {"model_type": "mmvae", "K": 3},
    "mmvae_iwae_normal": {
        "model_type": "mmvae",
        "K": 3,
        "loss": "iwae_looser",
        "prior_and_posterior_dist": "normal",
        "learn_prior": False,
    },
    "mmvae_plus": {"model_type": "mmvae_plus", "K": 3},
    "mmvae_plus_iwae_softplus": {
        "model_type": "mmvae_plus",
        "K": 2,
        "loss": "iwae_looser",
        "prior_and_posterior_dist": "normal_with_softplus",
        "learn_shared_prior": True,
        "reconstruction_option": "joint_prior",
    },
    "cmvae": {"model_type": "cmvae", "K": 2, "number_of_clusters": 3},
    "cmvae_normal_joint_prior": {
        "model_type": "cmvae",
        "K": 2,
        "loss": "iwae_looser",
        "prior_and_posterior_dist": "normal",
        "reconstruction_option": "joint_prior",
    },
    "mopoe": {"model_type": "mopoe"},
    "mopoe_private": {"model_type": "mopoe", "modalities_specific_dim": 2, "beta_style": 0.5},
    "mopoe_private_per_modality": {"model_type": "mopoe", "modalities_specific_dim": {"image": 2}},
    "mvtcae": {"model_type": "mvtcae"},
    "crmvae": {"model_type": "crmvae"},
    "me_mvae": {"model_type": "me_mvae"},
    "me_mvae_mean": {"model_type": "me_mvae", "join_type": "mean"},
    "gpoe": {"model_type": "gpoe"},
    "gpoe_private": {"model_type": "gpoe", "modalities_specific_dim": 2},
    "mmjsd": {"model_type": "mmjsd", "alpha": 0.8},
    "mmjsd_private": {"model_type": "mmjsd", "modalities_specific_dim": 2, "beta": 0.5},
    "mmjsd_multiview_ae": {"model_type": "mmjsd", "js_form": "multiview_ae"},
    "dmvae": {"model_type": "dmvae"},
    "weighted_dmvae": {"model_type": "weighted_dmvae", "modalities_specific_dim": 1},
    "dmvae_sizes": {
        "model_type": "dmvae",
        "modalities_specific_dim": {"image": 3, "label": 1},
        "modalities_specific_betas": {"image": 0.5},
    },
    "ae": {"model_type": "ae"},
    "mcvae": {"model_type": "mcvae", "beta": 0.5},
    "mcvae_sparse": {"model_type": "mcvae", "sparse": True, "threshold": 0.6},
    "dvcca": {"model_type": "dvcca"},
    "dvcca_private_label_encoded": {
        "model_type": "dvcca",
        "encoded_modality": "label",
        "modalities_specific_dim": {"image": 2, "label": 1},
    },
    "dccae": {"model_type": "dccae"},
    "dccae_weighted_components": {
        "model_type": "dccae",
        "reconstruction_weight": 0.5,
        "cca_components": 2,
        "modalities": [*MODALITIES, {"name": "extra", "shape": [3]}],
    },
    "maae": {"model_type": "maae", "discriminator": {"kind": "mlp", "hidden": [16]}},
    "mwae": {"model_type": "mwae", "discriminator": {"kind": "mlp", "hidden": [16]}},
    "mwae_mmd": {"model_type": "mwae", "penalty": "mmd", "mmd_weight": 2.0},
    **{f"hook_{name}": config for name, config in HOOK_MODELS.items()},
}


def make_config(variant: str) -> dict:
    cfg = {"modalities": MODALITIES, **SMALL, **VARIANTS[variant]}
    return cfg


def make_batch(config: dict, n: int = 6, seed: int = 0, masks: dict | None = None) -> Batch:
    g = torch.Generator().manual_seed(seed)
    data = {}
    for spec in config["modalities"]:
        shape = tuple(spec["shape"])
        if spec.get("likelihood", {}).get("kind") == "categorical":
            data[spec["name"]] = torch.eye(shape[-1])[torch.randint(shape[-1], (n,), generator=g)]
        else:
            data[spec["name"]] = torch.rand((n, *shape), generator=g)
    if masks is None:
        masks = {m: torch.ones(n, dtype=torch.bool) for m in data}
    return Batch(data, masks, torch.randint(10, (n,), generator=g))


def built_in_models() -> set[str]:
    """The model types the project ships (other tests register their own in this process)."""
    return {n for n, cls in MODEL_REGISTRY.items() if cls.__module__.startswith("core.models.")}
