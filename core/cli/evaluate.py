"""`mmvae evaluate MODEL_DIR --dataset digits`: run metrics on a saved model, print JSON."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from core.metrics.evaluate import DEFAULT_METRICS, METRICS


def _load_dataset(reference: str, split: str):
    """The dataset `reference` names (core/data/open.py), in memory for the metrics."""
    from core.data.open import open_dataset

    dataset = open_dataset(reference, split)
    head = getattr(dataset, "head", None)  # a dataset read by rows: all of its samples
    return head(len(dataset)) if head is not None else dataset


def _metric_list(text: str) -> list[str]:
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown metrics {unknown}; known: {sorted(METRICS)}")
    return names


def run(args: argparse.Namespace) -> int:
    from core.metrics.evaluate import evaluate
    from core.models.pretrained import load_folder

    model = load_folder(Path(args.model_dir))
    dataset = _load_dataset(args.dataset, args.split)
    options = {"conditional": args.conditional}
    if args.inception_weights:
        options["inception_weights"] = args.inception_weights
    if args.inception_dims:
        options["inception_dims"] = args.inception_dims
    if args.fid_every_subset:
        options["fid_every_subset"] = True
    if args.coherence_samples:
        options["coherence_n_samples"] = args.coherence_samples
    if args.clustering_repeats:
        options["clustering_repeats"] = args.clustering_repeats
    if args.clustering_fit_split:
        options["clustering_fit_dataset"] = _load_dataset(args.dataset, args.clustering_fit_split)
    if args.classifiers:
        from core.metrics.classifiers import load_classifiers

        options["classifiers"] = load_classifiers(args.classifiers)
    if args.metrics_log:
        options["metrics_log"] = args.metrics_log
    with metric_bar(args.progress) as on_metric:
        report = evaluate(
            model,
            dataset,
            metrics=args.metrics,
            output_dir=args.output,
            k=args.k,
            seed=args.seed,
            batch_size=args.batch_size,
            n_samples=args.n_samples,
            on_metric=on_metric,
            **options,
        )
    if args.trackers:
        from core.training.trackers import log_evaluation

        config = {"model_dir": args.model_dir, "dataset": args.dataset, "split": args.split,
                  "metrics": args.metrics, "k": args.k, "seed": args.seed}  # fmt: skip
        out = Path(args.output) if args.output else None
        report["trackers"] = log_evaluation(args.trackers, report, out, config)
    print(json.dumps(report, indent=2))
    return 0


@contextlib.contextmanager
def metric_bar(progress: bool | None) -> Iterator[Callable[[str, int, int], None]]:
    """A tqdm bar over the metrics being computed (on a terminal, or when `progress`)."""
    import sys

    from tqdm import tqdm

    disable = not sys.stderr.isatty() if progress is None else not progress
    with tqdm(unit="metric", desc="evaluate", disable=disable) as bar:

        def on_metric(name: str, done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
            bar.set_postfix_str(name)

        yield on_metric


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a saved model and print the report as JSON",
        description="Run evaluation metrics on a saved model folder; print the report as JSON.",
    )
    p.add_argument("model_dir", metavar="MODEL_DIR", help="folder written by save_pretrained")
    p.add_argument("--dataset", required=True, help="as mmvae train --dataset")
    p.add_argument("--split", default="test", help="split of a built-in dataset (default: test)")
    p.add_argument(
        "--metrics",
        type=_metric_list,
        default=list(DEFAULT_METRICS),
        help=f"comma-separated, from {sorted(METRICS)} (default: {','.join(DEFAULT_METRICS)})",
    )
    p.add_argument("--k", type=int, default=100, help="importance samples per data point")
    p.add_argument("--n-samples", type=int, default=1000, help="unconditional samples (FID, ...)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--trackers",
        type=json.loads,
        help='send the report and figures to tracker runs, as TrainerConfig.trackers: '
        '\'[{"kind": "tensorboard", "log_dir": "runs/tb"}]\'',
    )
    p.add_argument("--conditional", action="store_true", help="also log p(x_m | other modalities)")
    p.add_argument(
        "--coherence-samples", type=int, help="generations per conditioning sample (coherence)"
    )
    p.add_argument("--clustering-repeats", type=int, help="k-means runs (mean and std)")
    p.add_argument(
        "--clustering-fit-split", help="fit the clusters on this split (e.g. train), score --split"
    )
    p.add_argument(
        "--classifiers", type=Path, help="folder of `mmvae classifier train` (coherence)"
    )
    p.add_argument("--inception-weights", help="InceptionV3 .safetensors (or hf://REPO@SHA/FILE)")
    p.add_argument(
        "--inception-dims", type=int, choices=[64, 192, 768, 2048], help="FID feature block"
    )
    p.add_argument(
        "--fid-every-subset", action="store_true", help="conditional FID from every subset"
    )
    p.add_argument("--metrics-log", help="JSON-lines training log to plot (with --output)")
    p.add_argument("--output", type=Path, help="folder for figures and metrics.json")
    p.set_defaults(func=run)
