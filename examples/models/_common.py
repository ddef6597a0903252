"""What the model-family examples share: the command line, the data, training and the scores.

Each family script (`python examples/models/<family>.py --epochs N`) defines `models(epochs)`, a
dict of named model configs, and calls `run` with it; `run` trains every config on `digits` with a
share of its modalities hidden (MCAR) and prints one table row per model.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from core.data import MultimodalDataset, builtin_modalities, load_builtin, mcar
from core.metrics import cross_coherence, joint_nll
from core.models import MultimodalVAE, build_model
from core.training import Trainer, TrainerConfig

NETWORK = {"kind": "mlp", "hidden": [128, 128]}  # encoders and decoders of every example
HEADER = f"{'model':<22} {'image->label':>12} {'test NLL':>10}"


def parse_args(description: str | None) -> argparse.Namespace:
    """The options every family script takes (tiny defaults: each model trains in seconds)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--epochs", type=int, default=20, help="training epochs per model")
    parser.add_argument("--missing-ratio", type=float, default=0.3, help="MCAR share hidden")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, data and draws")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="train only these entries")
    return parser.parse_args()


def digits_config(model_type: str, latent_dim: int = 16, **options: Any) -> dict[str, Any]:
    """A model config for `digits` (an 8x8 `image` and a 10-class `label`) plus its options."""
    return {
        "model_type": model_type,
        "modalities": builtin_modalities("digits"),
        "latent_dim": latent_dim,
        "encoder": NETWORK,
        "decoder": NETWORK,
        **options,
    }


def data(args: argparse.Namespace) -> tuple[MultimodalDataset, MultimodalDataset]:
    """The training split with `--missing-ratio` of its modalities hidden, and the test split."""
    train = mcar(load_builtin("digits", "train"), ratio=args.missing_ratio, seed=args.seed)
    return train, load_builtin("digits", "test")


def train(config: dict[str, Any], args: argparse.Namespace) -> MultimodalVAE:
    """Build the model of `config` and train it for `--epochs` (every stage it declares)."""
    torch.manual_seed(args.seed)
    model = build_model(config)
    train_set, test_set = data(args)
    Trainer(model, train_set, test_set, TrainerConfig(epochs=args.epochs, seed=args.seed)).fit()
    return model.eval()


def score(model: MultimodalVAE, test: MultimodalDataset, seed: int = 0) -> dict[str, float | None]:
    """Image-to-label coherence and test NLL (k=100); None where the model has no such figure
    (a conditional model generating images only; an autoencoder, which defines no likelihood)."""
    g = torch.Generator().manual_seed(seed)
    coherence = None
    if model.generation_error(["image"], ["label"]) is None:
        scores = cross_coherence(model, test, subsets=[["image"]], generator=g)
        coherence = scores["per_subset"]["image"]["label"]["accuracy"]
    nll = None if model.deterministic else joint_nll(model, test, k=100, generator=g)["joint_nll"]
    return {"image_to_label": coherence, "test_nll": nll}


def row(name: str, scores: dict[str, float | None]) -> str:
    """One line of the results table ("n/a" where a figure does not apply)."""
    coherence, nll = scores["image_to_label"], scores["test_nll"]
    shown_coherence = "n/a" if coherence is None else f"{coherence:.3f}"
    shown_nll = "n/a" if nll is None else f"{nll:.2f}"
    return f"{name:<22} {shown_coherence:>12} {shown_nll:>10}"


def run(models: dict[str, dict[str, Any]], args: argparse.Namespace) -> dict[str, MultimodalVAE]:
    """Train and score every named config (or those in `--only`); print the table."""
    names = args.only or list(models)
    unknown = sorted(set(names) - set(models))
    if unknown:
        raise SystemExit(f"--only: unknown {unknown}; this script has {list(models)}")
    _, test = data(args)
    trained = {}
    print(HEADER)
    for name in names:
        trained[name] = train(models[name], args)
        print(row(name, score(trained[name], test, args.seed)), flush=True)
    return trained
