"""`mmvae train`: train a model on a built-in dataset or an .npz file and save it.

Options come from flags and, optionally, a spec file (`--spec run.yaml`, YAML or JSON) with
`model: {ModelConfig fields}`, `trainer: {TrainerConfig fields}`, `dataset: name`,
`missing_ratio: float`; flags override the file. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

SPEC_KEYS = {"model", "trainer", "dataset", "dataset_options", "missing_ratio"}


@dataclass
class TrainJob:
    """Everything a training run needs, resolved from flags and the spec file."""

    model_config: dict[str, Any]
    trainer_config: dict[str, Any]
    dataset: str
    missing_ratio: float
    eval: bool
    dataset_options: dict[str, Any] = field(default_factory=dict)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model and save it",
        description="Train a multimodal VAE; writes checkpoints, metrics.jsonl and model/.",
    )
    p.add_argument("--spec", type=Path, help="YAML/JSON file with model, trainer, dataset keys")
    p.add_argument("--model", help="model_type (default: mvae, or the spec's)")
    p.add_argument(
        "--dataset",
        help="built-in name (digits), an .npz, a folder of .npy arrays, or <published>:<folder> "
        "(mnist_svhn, polymnist)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--output", help="output directory (checkpoints, metrics.jsonl, model/)")
    p.add_argument("--latent-dim", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int)
    p.add_argument("--missing-ratio", type=float, help="hide modalities at random (MCAR)")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--keep-best", action="store_true", default=None, help="final = best eval")
    p.add_argument("--no-eval", action="store_true", help="skip evaluation on the test split")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over in a used --output")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        help="train data-parallel in N processes on this machine (torchrun: one GPU each on "
        "CUDA, gloo on CPU); --batch-size stays the global batch",
    )
    p.set_defaults(func=run)


def read_spec(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        spec = yaml.safe_load(Path(path).read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML/JSON ({err})") from err
    if not isinstance(spec, dict):
        raise ValueError(f"{path}: expected a mapping with keys {sorted(SPEC_KEYS)}")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected {sorted(SPEC_KEYS)}")
    for key in ("model", "trainer"):
        if not isinstance(spec.get(key, {}), dict):
            raise ValueError(f"{path}: '{key}' must be a mapping")
    return spec


def resolve_job(args: argparse.Namespace) -> TrainJob:
    """Merge the spec file and the flags (flags win)."""
    spec = read_spec(args.spec)
    dataset = args.dataset or spec.get("dataset")
    if not dataset:
        raise ValueError("dataset: required (--dataset or 'dataset:' in --spec)")
    model = dict(spec.get("model") or {})
    model["model_type"] = args.model or model.get("model_type") or "mvae"
    if args.latent_dim is not None:
        model["latent_dim"] = args.latent_dim
    trainer = dict(spec.get("trainer") or {})
    flags = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "seed": args.seed,
        "device": args.device,
        "output_dir": args.output,
        "keep_best": args.keep_best,
    }
    trainer.update({k: v for k, v in flags.items() if v is not None})
    if not trainer.get("output_dir"):
        raise ValueError("output: required (--output or 'trainer: {output_dir: ...}' in --spec)")
    ratio = args.missing_ratio if args.missing_ratio is not None else spec.get("missing_ratio", 0)
    options = spec.get("dataset_options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{args.spec}: 'dataset_options' must be a mapping")
    return TrainJob(model, trainer, str(dataset), float(ratio or 0.0), not args.no_eval, options)


def load_data(name: str, eval: bool, options: dict[str, Any]) -> tuple[Any, Any, list[dict]]:
    """(train, test or None, modality specs) of the dataset `name` (core/data/open.py)."""
    from core.data.open import has_split, modality_specs, open_dataset

    train = open_dataset(name, "train", **options)
    test = open_dataset(name, "test", **options) if eval and has_split(name, "test") else None
    return train, test, modality_specs(name, train)


@contextlib.contextmanager
def interrupt_to_event() -> Iterator[threading.Event]:
    """First Ctrl-C sets the event (a clean stop with a checkpoint); a second one aborts."""
    event = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield event
        return

    def handler(signum: int, frame: Any) -> None:
        if event.is_set():
            raise KeyboardInterrupt
        print("\nstopping after this step (Ctrl-C again to abort)", file=sys.stderr)
        event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield event
    finally:
        signal.signal(signal.SIGINT, previous)


def train_job(job: TrainJob, resume: bool, overwrite: bool, progress: bool | None) -> dict:
    """Run `job` and return the JSON summary."""
    import torch

    from core.data import mcar
    from core.models.registry import build_model
    from core.training import ProgressBar, StopOnEvent, Trainer, TrainerConfig, distributed

    config = TrainerConfig.model_validate(job.trainer_config)
    train, test, modalities = load_data(job.dataset, job.eval, job.dataset_options)
    if job.missing_ratio:
        train = mcar(train, job.missing_ratio, seed=config.seed)
    model_config = {"modalities": modalities, **job.model_config}
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    with interrupt_to_event() as event:
        callbacks = [ProgressBar(force=progress), StopOnEvent(event, "interrupted")]
        trainer = Trainer(model, train, test, config, callbacks, dataset_name=job.dataset)
        result = trainer.fit(resume=resume, overwrite=overwrite)
    distributed.leave()
    return {"model_type": model.model_type, "dataset": job.dataset, **result.to_dict()}


def launch(nproc: int, argv: list[str]) -> int:
    """Run this command again under torchrun in `nproc` processes (`argv` without --nproc);
    its exit status: non-zero when any process failed (torchrun stops the others)."""
    import os
    import subprocess

    if nproc < 1:
        raise ValueError(f"nproc: must be at least 1, got {nproc}")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc-per-node={nproc}", "-m", "core.cli.main", *argv]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    return subprocess.run(command, env=env, check=False).returncode


def without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            out.append(item)
    return out


def run(args: argparse.Namespace) -> int:
    import os

    if args.nproc != 1 and "WORLD_SIZE" not in os.environ:
        return launch(args.nproc, without_nproc(getattr(args, "argv", sys.argv[1:])))
    from core.training import distributed

    summary = train_job(resolve_job(args), args.resume, args.overwrite, args.progress)
    if os.environ.get("RANK", "0") == "0":
        print(json.dumps(summary, indent=2))
    code = 130 if summary["stop_reason"] == "interrupted" else 0
    if distributed.from_environment().distributed:  # a rank under torchrun, done
        distributed.exit_process(code)
    return code
