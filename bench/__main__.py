"""Run every benchmark: training, in-process inference, HTTP serving, server memory.

    python -m bench [--quick] [--out bench/results] [--only training,inference,serving,memory]

Each part writes `<out>/<part>.json` and `<out>/<part>.md`; `<out>/summary.md` joins the tables.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench.common import RESULTS_DIR

PARTS = ("training", "inference", "serving", "memory")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run of every part")
    parser.add_argument("--only", default=",".join(PARTS), help="comma-separated parts")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    parts = [p for p in args.only.split(",") if p]
    for part in parts:
        if part not in PARTS:
            parser.error(f"unknown part {part!r}; choose from {', '.join(PARTS)}")
    extra = ["--quick"] if args.quick else []
    for part in parts:
        began = time.perf_counter()
        print(f"== bench.{part}", flush=True)
        module = importlib.import_module(f"bench.{part}")
        module.main([*extra, "--out", str(args.out)])
        print(f"== bench.{part}: {time.perf_counter() - began:.0f} s", flush=True)
    summary = [(args.out / f"{p}.md").read_text() for p in PARTS if (args.out / f"{p}.md").exists()]
    (args.out / "summary.md").write_text("\n".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
