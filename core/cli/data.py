"""`mmvae data fetch NAME --to DIR`: download a published benchmark's files, checksums checked."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    from core.data.fetch import SOURCES

    data = subparsers.add_parser("data", help="published datasets", description=__doc__)
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    fetch = commands.add_parser(
        "fetch",
        help="download a dataset's files (MD5-checked)",
        description="Download what a published dataset's loader reads, into the layout it "
        "expects; files already there with the right checksum are kept.",
    )
    fetch.add_argument("name", choices=sorted(SOURCES))
    fetch.add_argument("--to", required=True, help="folder to put the files in")
    fetch.add_argument("--mirror", help="base URL serving the same file names instead")
    fetch.add_argument(
        "--md5",
        action="append",
        default=[],
        metavar="FILE=HEX",
        help="the MD5 of a file no checksum is pinned for (PolyMNIST.zip: from its Zenodo page)",
    )
    fetch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    fetch.set_defaults(func=run_fetch)
    make = commands.add_parser(
        "make-polymnist",
        help="make PolyMNIST or Translated PolyMNIST from MNIST and background pictures",
        description="Write <to>/<split>/m<k>/<i>.<digit>.png from MNIST's files (as `data fetch "
        "mnist_svhn` lays them out) and one background picture per modality, from a seed.",
    )
    make.add_argument("--mnist", required=True, help="folder with MNIST's IDX files")
    make.add_argument("--backgrounds", required=True, help="folder of background pictures")
    make.add_argument("--to", required=True)
    make.add_argument("--translated", action="store_true", help="scale 0.75 and translate")
    make.add_argument("--seed", type=int, default=0)
    make.set_defaults(func=run_make_polymnist)


def run_fetch(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from core.data.fetch import FetchError, fetch, loader_root

    given = dict(item.partition("=")[::2] for item in args.md5)
    if any(not v for v in given.values()):
        raise FetchError(f"md5: expected FILE=HEX, got {args.md5}")
    disable = not sys.stderr.isatty() if args.progress is None else not args.progress
    with tqdm(unit="B", unit_scale=True, desc=f"fetch {args.name}", disable=disable) as bar:
        paths = fetch(
            args.name, args.to, args.mirror, report=lambda file, n: bar.update(n), md5=given
        )
    reference = f"{args.name}:{loader_root(args.name, args.to)}"
    print(json.dumps({"files": [str(p) for p in paths], "dataset": reference}, indent=2))
    return 0


def run_make_polymnist(args: argparse.Namespace) -> int:
    from core.data.published.make_polymnist import make_polymnist

    scale = 0.75 if args.translated else 1.0
    for split in ("train", "test"):
        make_polymnist(args.mnist, args.backgrounds, args.to, split, scale=scale,
                       translate=args.translated, seed=args.seed + (split == "test"))  # fmt: skip
    print(json.dumps({"dataset": f"polymnist:{args.to}"}, indent=2))
    return 0
