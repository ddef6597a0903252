"""`mmvae classifier train --dataset REF --output DIR`: one classifier per modality for
coherence (core/metrics/classifiers.py), trained on the train split, scored on the test split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser(
        "classifier", help="classifiers for coherence", description=__doc__
    )
    commands = group.add_subparsers(dest="classifier_command", metavar="COMMAND", required=True)
    p = commands.add_parser(
        "train",
        help="train a classifier per modality",
        description="Train one classifier per (non-categorical) modality against the dataset's "
        "labels; each saved as DIR/<modality>/ (classifier.json + model.safetensors).",
    )
    p.add_argument("--dataset", required=True, help="as mmvae train --dataset")
    p.add_argument("--output", type=Path, required=True, help="folder for the classifiers")
    p.add_argument("--modalities", help="comma-separated (default: every non-categorical one)")
    p.add_argument(
        "--network", type=json.loads, help="network spec as JSON (default: MLP [256, 256])"
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from core.data.open import has_split, modality_specs, open_dataset
    from core.metrics.classifiers import accuracy_on, save_classifier, train_classifier

    train = open_dataset(args.dataset, "train")
    test = open_dataset(args.dataset, "test") if has_split(args.dataset, "test") else None
    specs = {s["name"]: s for s in modality_specs(args.dataset, train)}
    if args.modalities:
        names = [m.strip() for m in args.modalities.split(",") if m.strip()]
        unknown = sorted(set(names) - set(specs))
        if unknown:
            raise ValueError(f"modalities: {unknown} not in the dataset ({sorted(specs)})")
    else:
        names = [m for m, s in specs.items() if s.get("kind") != "categorical"]
    report = {}
    for m in names:
        classifier = train_classifier(
            train, m, args.network, args.epochs, args.batch_size, args.lr, args.seed
        )
        scored = {"train_accuracy": accuracy_on(classifier, train)}
        if test is not None:
            scored["test_accuracy"] = accuracy_on(classifier, test)
        info = {"dataset": args.dataset, "epochs": args.epochs, "seed": args.seed, **scored}
        save_classifier(classifier, args.output / m, info)
        report[m] = scored
    print(json.dumps({"output": str(args.output), "classifiers": report}, indent=2))
    return 0
