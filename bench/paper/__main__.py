"""Run a paper's experiment with its published settings on its dataset given as .npz files.

    python -m bench.paper --list
    python -m bench.paper cmvae_polymnist --train train.npz --test test.npz --output runs/cmvae

The benchmark datasets are not downloadable here: convert them to the project's .npz format
(`core/data/npz.py`: one array per modality, `labels` for the class). The report
(`paper_report.json` in the run folder) holds the joint NLL and reconstruction errors, plus what
the experiment adds (CMVAE: the clusters kept and their accuracy). FID against the papers'
anchors: `mmvae evaluate RUN/model --dataset test.npz --inception-weights ...`; coherence against
them needs each benchmark's pretrained digit classifiers, which come with its dataset loader.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench.paper.experiments import EXPERIMENTS
from core.data import load_npz
from core.metrics import evaluate
from core.models import build_model
from core.training import Trainer, TrainerConfig


def describe() -> str:
    return "\n".join(
        f"{e.name}: {e.paper} on {e.dataset}, {e.epochs} epochs. {e.notes}. Anchor: {e.anchor}"
        for e in EXPERIMENTS.values()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", nargs="?", choices=sorted(EXPERIMENTS))
    parser.add_argument("--list", action="store_true", help="describe every experiment")
    parser.add_argument("--train", type=Path, help="training split (.npz)")
    parser.add_argument("--test", type=Path, help="test split (.npz)")
    parser.add_argument("--output", type=Path, help="run folder")
    parser.add_argument("--epochs", type=int, help="default: the paper's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=1000, help="importance samples for the NLL")
    args = parser.parse_args(argv)
    if args.list:
        print(describe())
        return 0
    if not (args.experiment and args.train and args.test and args.output):
        parser.error("give an experiment, --train, --test and --output (or --list)")
    experiment = EXPERIMENTS[args.experiment]
    train, test = load_npz(args.train), load_npz(args.test)
    shapes = {m: list(s) for m, s in train.shapes.items()}
    experiment.check_shapes(shapes)
    torch.manual_seed(args.seed)
    model = build_model(experiment.model(shapes))
    epochs = args.epochs or experiment.epochs
    config = TrainerConfig(
        **experiment.trainer, epochs=epochs, output_dir=str(args.output), seed=args.seed
    )
    Trainer(model, train, test, config).fit()
    model.eval()
    report = evaluate(model, test, metrics=list(experiment.metrics), k=args.k, seed=args.seed)
    report["experiment"] = {"name": experiment.name, "epochs": epochs, "anchor": experiment.anchor}
    if experiment.after_training is not None:
        report["metrics"][experiment.name] = experiment.after_training(model, train, test)
    (args.output / "paper_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report["metrics"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
