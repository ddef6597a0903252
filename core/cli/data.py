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
    fetch.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    fetch.set_defaults(func=run_fetch)


def run_fetch(args: argparse.Namespace) -> int:
    import sys

    from tqdm import tqdm

    from core.data.fetch import fetch

    disable = not sys.stderr.isatty() if args.progress is None else not args.progress
    with tqdm(unit="B", unit_scale=True, desc=f"fetch {args.name}", disable=disable) as bar:
        paths = fetch(args.name, args.to, args.mirror, report=lambda file, n: bar.update(n))
    reference = f"{args.name}:{args.to}"
    print(json.dumps({"files": [str(p) for p in paths], "dataset": reference}, indent=2))
    return 0
