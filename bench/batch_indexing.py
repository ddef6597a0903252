"""Batches indexed straight from an in-memory dataset against batches through a DataLoader
(`TrainerConfig.data_on_device` "auto" vs "never"), on the CPU, alternated in one process.

    python -m bench.batch_indexing [--models mvae,mopoe] [--batch-sizes 64,256] [--rounds 7]

Two figures per model and batch size: the seconds of one epoch of batches alone (no model),
and the seconds of one training epoch of the `Trainer` (eager, the networks of
bench/compare/protocol.py on its synthetic data). Each round times both ways, in turns; the
speed-up is the median of the rounds' ratios. Results: bench/results/batch_indexing.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import (
    RESULTS_DIR,
    comma_ints,
    comma_list,
    finish,
    machine,
    median,
    report,
    write,
)

WAYS = ("auto", "never")  # indexed, DataLoader


def measure(model_name: str, batch_size: int, rounds: int, size: int) -> dict[str, Any]:
    """Per way: median seconds of an epoch of batches alone and of a training epoch."""
    from bench.compare import ours, protocol
    from core.training import Trainer, TrainerConfig
    from core.training.batches import iterate, shuffled_batches

    torch.manual_seed(0)
    model = ours.build(model_name, {})
    data = ours.dataset(protocol.synthetic(size))
    order = shuffled_batches(len(data), batch_size, 0, 1)
    cpu = torch.device("cpu")

    def batches_alone(way: str) -> float:
        start = time.perf_counter()
        for _ in iterate(data, order, cpu, indexed=way == "auto"):
            pass
        return time.perf_counter() - start

    def training_epoch(way: str) -> float:
        config = TrainerConfig(
            epochs=1, batch_size=batch_size, device="cpu", data_on_device=way, seed=0
        )
        clock = ours.EpochClock()
        Trainer(model, data, None, config, [clock]).fit()
        return clock.seconds[0]

    figures: dict[str, dict[str, list[float]]] = {"batches": {}, "training": {}}
    for part, timed in (("batches", batches_alone), ("training", training_epoch)):
        for way in WAYS:  # warm-up
            timed(way)
        seconds: dict[str, list[float]] = {way: [] for way in WAYS}
        for r in range(rounds):
            for way in WAYS if r % 2 == 0 else WAYS[::-1]:
                seconds[way].append(timed(way))
        figures[part] = seconds
    out: dict[str, Any] = {"model": model_name, "batch_size": batch_size, "steps": len(order)}
    for part, seconds in figures.items():
        ratios = [b / a for a, b in zip(seconds["auto"], seconds["never"], strict=True)]
        out[part] = {
            "indexed_seconds": median(seconds["auto"]),
            "loader_seconds": median(seconds["never"]),
            "speedup": median(ratios),
            "speedup_runs": ratios,
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    rows = []
    for r in results["runs"]:
        b, t = r["batches"], r["training"]
        per_batch = [1e6 * b[k] / r["steps"] for k in ("loader_seconds", "indexed_seconds")]
        rows.append(
            [r["model"], r["batch_size"], f"{per_batch[0]:.0f}", f"{per_batch[1]:.0f}",
             f"{t['loader_seconds']:.3f}", f"{t['indexed_seconds']:.3f}", f"{t['speedup']:.3f}x"]
        )  # fmt: skip
    head = ["model", "batch", "µs a batch, DataLoader", "indexed", "training epoch s, DataLoader",
            "indexed", "training speed-up"]  # fmt: skip
    method = (
        f"{p['size']} synthetic samples, eager, one process; medians of {p['rounds']} "
        "alternated rounds each way, the speed-up the median of the per-round ratios."
    )
    return report(
        "Batches indexed from the in-memory dataset vs through a DataLoader (CPU)",
        results["machine"],
        method,
        head,
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=comma_list, default=["mvae", "mopoe"])
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--size", type=int, default=12_800)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    info = machine()
    runs = []
    for model_name in args.models:
        for bs in args.batch_sizes:
            runs.append(measure(model_name, bs, args.rounds, args.size))
            print(json.dumps(runs[-1]), flush=True)
    results = {"params": {"models": args.models, "batch_sizes": args.batch_sizes,
                          "rounds": args.rounds, "size": args.size}, "runs": runs}  # fmt: skip
    results["machine"] = finish(info)
    write("batch_indexing", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
