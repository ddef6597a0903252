"""MMVAE+ on PolyMNIST with the paper's settings (Palumbo, Daunhawer & Vogt, ICLR 2023; MODELS.md):
K = 1, the looser IWAE bound, β = 2.5, latent 32 shared + 32 private per modality, Laplace
posteriors (softmax scales), Laplace(0.75) decoders, convolutional networks, Adam with amsgrad,
learning rate 1e-3, batch 32.

PolyMNIST (5 modalities of 3×28×28 in [0, 1]) is not downloadable here: give it as two .npz files
in the project's format (`core/data/npz.py`: one array per modality, `labels` for the digit).
The paper's figures (coherence 86.9, FID 92.8; MultiVae 88.6 ± 0.8 / 93 ± 5) need PolyMNIST's
digit classifiers and Inception weights: this script reports the joint NLL and reconstruction
errors; coherence and FID follow with the datasets issue's classifiers.

    python -m bench.paper.mmvae_plus_polymnist --train train.npz --test test.npz \\
        --epochs 150 --output runs/mmvae_plus_polymnist
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch

from core.data import load_npz
from core.metrics import evaluate
from core.models import build_model
from core.training import Trainer, TrainerConfig


def model_config(modalities: list[str], shape: list[int]) -> dict[str, Any]:
    likelihood = {"kind": "laplace", "scale": 0.75}
    return {
        "model_type": "mmvae_plus",
        "modalities": [
            {"name": m, "shape": shape, "kind": "image", "likelihood": likelihood}
            for m in modalities
        ],
        "latent_dim": 32,
        "modalities_specific_dim": 32,
        "encoder": {"kind": "conv"},
        "decoder": {"kind": "conv"},
        "K": 1,
        "loss": "iwae_looser",
        "beta": 2.5,
        "prior_and_posterior_dist": "laplace_with_softmax",
    }


def trainer_config(epochs: int, output: Path, seed: int) -> TrainerConfig:
    return TrainerConfig(
        epochs=epochs,
        batch_size=32,
        learning_rate=1e-3,
        optimizer="adam",
        optimizer_kwargs={"amsgrad": True},
        output_dir=str(output),
        seed=seed,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, required=True, help="PolyMNIST train split (.npz)")
    parser.add_argument("--test", type=Path, required=True, help="PolyMNIST test split (.npz)")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help="run folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLL")
    args = parser.parse_args(argv)
    train, test = load_npz(args.train), load_npz(args.test)
    names = sorted(train.data)
    shape = list(train.data[names[0]].shape[1:])
    torch.manual_seed(args.seed)
    model = build_model(model_config(names, shape))
    Trainer(model, train, test, trainer_config(args.epochs, args.output, args.seed)).fit()
    metrics = ["likelihood", "reconstruction"]
    report = evaluate(model.eval(), test, metrics=metrics, k=args.k, seed=args.seed)
    (args.output / "paper_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
