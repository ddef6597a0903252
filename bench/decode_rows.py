"""Joint NLL seconds by how many decoder rows are scored per pass (`DECODE_ROWS`), in one
process, the sizes alternated round by round; "one pass" decodes every draw of a batch at once.

    python -m bench.decode_rows [--models mvae,jnf,mmvae] [--rows 512,1024,2048,4096] [--rounds 3]

Models with the networks of bench/compare/protocol.py (untrained: the cost does not depend on
the weights), the digits test split, K = 1000. Results: bench/results/decode_rows.{json,md}.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, finish, machine, machine_line, median, table, write

ONE_PASS = 10**9  # more rows than any batch of draws


def seconds(model: Any, dataset: Any, rows: int, k: int) -> float:
    import torch

    import core.models.base as base
    from core.metrics.likelihood import joint_nll

    default, base.DECODE_ROWS = base.DECODE_ROWS, rows
    try:
        torch.manual_seed(1)
        start = time.perf_counter()
        joint_nll(model, dataset, k=k)
        return time.perf_counter() - start
    finally:
        base.DECODE_ROWS = default


def run(models: list[str], sizes: list[int], rounds: int, k: int) -> dict[str, Any]:
    import torch

    from bench.compare import ours, protocol

    test = ours.dataset(protocol.digits("test"))
    out: dict[str, Any] = {}
    for name in models:
        torch.manual_seed(0)
        model = ours.build(name, {}).eval()
        times: dict[int, list[float]] = {rows: [] for rows in sizes}
        for r in range(rounds):
            for rows in sizes if r % 2 else sizes[::-1]:
                times[rows].append(seconds(model, test, rows, k))
        out[name] = {str(rows): median(v) for rows, v in times.items()}
        print(name, out[name], flush=True)
    return out


def markdown(results: dict[str, Any]) -> str:
    sizes = results["params"]["rows"]
    names = ["one pass" if rows == ONE_PASS else f"{rows} rows" for rows in sizes]
    rows = [[m, *(f"{v[str(s)]:.2f}" for s in sizes)] for m, v in results["seconds"].items()]
    return "\n".join(
        [
            "# Joint NLL seconds by decoder rows per pass",
            "",
            machine_line(results["machine"]),
            "",
            f"Digits test split, K = {results['params']['k']}, medians of "
            f"{results['params']['rounds']} alternated rounds.",
            "",
            table(["model", *names], rows),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    split = lambda s: [x for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--models", type=split, default=["mvae", "jnf", "mmvae"])
    parser.add_argument("--rows", type=lambda s: [int(x) for x in split(s)],
                        default=[512, 1024, 2048, 4096])  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    info = machine()
    sizes = [*args.rows, ONE_PASS]
    results = {
        "params": {"models": args.models, "rows": sizes, "rounds": args.rounds, "k": args.k},
        "seconds": run(args.models, sizes, args.rounds, args.k),
    }
    results["machine"] = finish(info)
    write("decode_rows", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
