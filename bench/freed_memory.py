"""Training samples/s with and without `keep_freed_cpu_memory`, each run in a fresh process (the
glibc setting is process-wide and permanent), the two alternated round by round.

    python -m bench.freed_memory [--models mvae,jmvae,mmvae_plus] [--batch-sizes 64,256]

Models with the networks of bench/compare/protocol.py on its synthetic data, eager, the epochs
after the first timed; minor page faults per step say where the time went. Results:
bench/results/freed_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

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

ROOT = Path(__file__).resolve().parents[1]


def one_run(spec: dict[str, Any]) -> dict[str, float]:
    """Train `spec['model']` for `spec['epochs']` epochs in this process; steady samples/s and
    minor page faults per step of the epochs after the first."""
    import torch

    from bench.compare import ours, protocol
    from core.training import Trainer

    torch.manual_seed(0)
    model = ours.build(spec["model"], {})
    clock = ours.EpochClock()
    config = ours.config(spec, spec["epochs"], 0).model_copy(
        update={"keep_freed_cpu_memory": spec["keep"]}
    )
    data = ours.dataset(protocol.synthetic(spec["size"]))
    Trainer(model, data, None, config, [clock]).fit()
    steps = -(-spec["size"] // spec["batch_size"])
    return {
        "samples_per_s": spec["size"] / median(clock.seconds[1:]),
        "faults_per_step": median(clock.faults[1:]) / steps,
    }


def measure(spec: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.freed_memory", "--one", json.dumps(spec)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(models: list[str], sizes: list[int], rounds: int, size: int, epochs: int) -> list[dict]:
    rows = []
    for name in models:
        for bs in sizes:
            runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
            for r in range(rounds):
                for keep in (True, False) if r % 2 else (False, True):
                    spec = {"model": name, "batch_size": bs, "size": size, "epochs": epochs}
                    runs[keep].append(measure({**spec, "keep": keep}))
            pairs = zip(runs[True], runs[False], strict=True)
            ratios = [kept["samples_per_s"] / base["samples_per_s"] for kept, base in pairs]
            row = {
                "model": name,
                "batch_size": bs,
                **{
                    f"{label}_{key}": median([x[key] for x in runs[keep]])
                    for keep, label in ((False, "default"), (True, "kept"))
                    for key in ("samples_per_s", "faults_per_step")
                },
                "speedup": median(ratios),
                "speedup_runs": ratios,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    rows = [
        [r["model"], r["batch_size"], f"{r['default_samples_per_s']:.0f}",
         f"{r['kept_samples_per_s']:.0f}", f"{r['speedup']:.2f}x",
         f"{r['default_faults_per_step']:.0f}", f"{r['kept_faults_per_step']:.0f}"]
        for r in results["runs"]
    ]  # fmt: skip
    head = ["model", "batch", "samples/s default", "kept", "speed-up", "faults/step default",
            "kept"]  # fmt: skip
    method = (
        f"Synthetic {p['size']} samples, {p['epochs']} epochs (the first untimed), eager, "
        f"each run a fresh process; medians of {p['rounds']} alternated rounds, the "
        "speed-up the median of the per-round ratios."
    )
    return report(
        "Training with the memory a step frees kept (keep_freed_cpu_memory)",
        results["machine"],
        method,
        head,
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = ["mvae", "jmvae", "mopoe", "mmvae", "mvtcae", "mmvae_plus"]
    parser.add_argument("--models", type=comma_list, default=models)
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single run, in a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return 0
    info = machine()
    results: dict[str, Any] = {
        "params": {"models": args.models, "batch_sizes": args.batch_sizes,
                   "rounds": args.rounds, "size": args.size, "epochs": args.epochs},
        "runs": run(args.models, args.batch_sizes, args.rounds, args.size, args.epochs),
    }  # fmt: skip
    results["machine"] = finish(info)
    write("freed_memory", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
