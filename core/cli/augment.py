"""`mmvae augment MODEL_DIR --n 1000 --output synth.npz`: synthetic or completed data as .npz.

The sampler is the one saved with the model when its name matches `--sampler` (default: the
saved one, else the prior); otherwise it is fitted on `--fit-dataset` and, with
`--save-sampler`, saved next to the model. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "augment",
        help="generate synthetic samples (or complete missing modalities) as .npz",
        description="Generate data with a saved model; writes the project's .npz format with "
        "provenance metadata.",
    )
    p.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="a saved model folder")
    p.add_argument("--n", type=int, help="number of synthetic samples (not with --complete)")
    p.add_argument("--output", type=Path, required=True, help="output .npz path")
    p.add_argument("--sampler", choices=["prior", "gmm", "maf", "iaf"], help="latent sampler")
    p.add_argument("--fit-dataset", default="digits", help="built-in name or .npz to fit on")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chunk-size", type=int, default=1024, help="rows per network pass")
    p.add_argument("--complete", type=Path, metavar="DATASET.npz", help="fill missing modalities")
    p.add_argument("--categorical", choices=["sample", "argmax"], default="sample")
    p.add_argument("--save-sampler", action="store_true", help="save a newly fitted sampler")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    p.set_defaults(func=run)


def _fit_dataset(reference: str):
    from core.data.builtin import resolve_dataset
    from core.data.npz import load_npz

    path = Path(reference)
    return (
        load_npz(path) if path.suffix == ".npz" and path.is_file() else resolve_dataset(reference)
    )


def resolve_sampler(args: argparse.Namespace, model):
    """The saved sampler if it is the one asked for; else a new one, fitted (and maybe saved)."""
    from core.samplers import build_sampler, save_sampler

    saved = model.sampler
    if saved is not None and args.sampler in (None, saved.name):
        return saved, "saved"
    sampler = build_sampler(args.sampler or "prior")
    generator = torch.Generator().manual_seed(args.seed)
    data = _fit_dataset(args.fit_dataset) if sampler.needs_data else None
    sampler.fit(model, data, generator=generator)
    if args.save_sampler:
        save_sampler(sampler, args.model_dir)
    return sampler, "fitted"


def run(args: argparse.Namespace) -> int:
    from core.augment import augment
    from core.data.npz import load_npz
    from core.models.pretrained import load_folder

    if args.complete is None and (args.n is None or args.n < 1):
        raise ValueError("--n: a positive number of samples is required (or use --complete)")
    if args.complete is not None and args.n is not None:
        raise ValueError("--n: not with --complete (the output has the dataset's size)")
    model = load_folder(args.model_dir)
    if getattr(model, "source", None) is None:
        model.source = str(args.model_dir.resolve())
    sampler, origin = resolve_sampler(args, model)
    given = load_npz(args.complete) if args.complete is not None else None
    dataset = augment(
        model,
        args.n,
        sampler=sampler,
        given=given,
        seed=args.seed,
        chunk_size=args.chunk_size,
        output=args.output,
        progress=args.progress,
        categorical=args.categorical,
    )
    summary = {
        "output": str(args.output),
        "n": len(dataset),
        "mode": dataset.metadata["provenance"]["mode"],
        "sampler": sampler.name,
        "sampler_origin": origin,
        "seed": args.seed,
    }
    print(json.dumps(summary))
    return 0
