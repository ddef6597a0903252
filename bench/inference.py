"""In-process inference latency: encode, generate and sample at batch 1 and 256, per model
(no HTTP), under `torch.inference_mode()` as the service runs them. Median of many calls.

    python -m bench.inference [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, finish, machine, machine_line, median, table, write

BATCHES = (1, 256)
OPS = ("encode", "generate", "sample")


def time_call(fn: Callable[[], Any], budget_s: float, min_calls: int = 5) -> dict[str, float]:
    """Median and p90 latency (ms) of `fn` over at least `min_calls` calls or `budget_s` s."""
    fn()  # warm-up
    times: list[float] = []
    stop = time.perf_counter() + budget_s
    while len(times) < min_calls or time.perf_counter() < stop:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    times.sort()
    return {
        "median_ms": round(median(times) * 1000, 3),
        "p90_ms": round(times[int(0.9 * (len(times) - 1))] * 1000, 3),
        "calls": len(times),
    }


def models() -> dict[str, Any]:
    """The served demo (MoPoE, trained) and every model type with the benchmark architecture."""
    from bench.training import LATENT_DIM, NETWORK, modality_specs
    from core.models import build_model
    from core.models.pretrained import load_folder
    from service.demo import ASSET_DIR

    out = {"digits-demo": load_folder(ASSET_DIR)}
    for kind in ("mvae", "mopoe", "jmvae", "mmvae", "mvtcae"):
        config = {
            "model_type": kind,
            "latent_dim": LATENT_DIM,
            **NETWORK,
            "modalities": modality_specs("digits", 2),
        }
        out[kind] = build_model(config)
    return {name: m.eval() for name, m in out.items()}


def operations(model: Any, batch: Any, n: int) -> dict[str, Callable[[], Any]]:
    """The timed calls: encode from every modality, generate label → image, sample n."""
    return {
        "encode": lambda: model.encode(batch),
        "generate": lambda: model.generate(batch, ["label"], ["image"]),
        "sample": lambda: model.sample(n),
    }


def run(budget_s: float, names: list[str] | None = None, threads: int | None = None) -> dict:
    import torch

    from core.data import load_builtin

    if threads:
        torch.set_num_threads(threads)
    info = machine()
    data = load_builtin("digits", "all")
    rows = []
    for name, model in models().items():
        if names and name not in names:
            continue
        for b in BATCHES:
            calls = operations(model, data.batch(torch.arange(b)), b)
            for op in OPS:
                with torch.inference_mode():
                    rows.append(
                        {"model": name, "op": op, "batch": b, **time_call(calls[op], budget_s)}
                    )
    return {"machine": finish(info), "budget_s": budget_s, "runs": rows}


def markdown(results: dict[str, Any]) -> str:
    rows = [
        [
            r["model"],
            r["op"],
            r["batch"],
            r["median_ms"],
            r["p90_ms"],
            round(r["batch"] / r["median_ms"] * 1000),
        ]
        for r in results["runs"]
    ]
    return (
        "\n".join(
            [
                "# In-process inference latency",
                "",
                machine_line(results["machine"]),
                "generate: label → image; sample: from the prior; torch.inference_mode().",
                "",
                table(["model", "op", "batch", "median ms", "p90 ms", "samples/s"], rows),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.2 s per point")
    parser.add_argument("--budget", type=float, default=None, help="seconds per point")
    parser.add_argument("--models", default="", help="comma-separated subset of the models")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    budget = args.budget or (0.2 if args.quick else 1.0)
    names = [n for n in args.models.split(",") if n] or None
    results = run(budget, names, args.threads)
    write("inference", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
