"""Two ways of running a training step, side by side in one process: torch's fused Adam
against LeanAdam (`adam`), the CPU compile without and with its bias pass (`bias`), and with
inductor's Python wrapper against its C++ one (`wrapper`).

    python -m bench.step_variants [--variants adam,bias,wrapper] [--models jmvae,mvae]
        [--batch-sizes 64,256] [--rounds 30] [--steps 20] [--no-compile] [--name step_variants]

Two copies of one model (bench/compare/protocol.py's networks, synthetic data), each with its
own optimizer and compiled forward, train in turns, `steps` steps at a time, the order swapped
every round, denormals flushed as the Trainer does; the speed-up is the median over rounds of
the first way's seconds over the second's. Steps in turns within one process see the same load,
which whole runs a minute apart on a shared machine do not. Results:
bench/results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
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

WAYS = {  # variant: (what the first way is, what the second is)
    "adam": ("torch.optim.Adam(fused=True)", "LeanAdam"),
    "bias": ("compiled, ReLU masks pass only", "compiled, ReLU masks and bias passes"),
    "wrapper": ("compiled, Python wrapper", "compiled, C++ wrapper"),
}
LEFT_OUT = {  # a compile variant: the option of `cpu_options()` its first way goes without
    # (inductor then uses its default: no such pass, the Python wrapper)
    "bias": "post_grad_custom_post_pass",
    "wrapper": "cpp_wrapper",
}


def _ways(variant: str) -> list[tuple[Callable[..., Any], dict[str, Any] | None]]:
    """(optimizer class, compile options) of each way; options None: the default passes."""
    from core.training import compiled
    from core.training.lean_adam import LeanAdam

    if variant == "adam":
        return [(torch.optim.Adam, None), (LeanAdam, None)]
    without = {k: v for k, v in compiled.cpu_options().items() if k != LEFT_OUT[variant]}
    return [(LeanAdam, without), (LeanAdam, None)]


def measure(
    variant: str, model_name: str, batch_size: int, rounds: int, steps: int, compile: bool
) -> dict[str, Any]:
    """Per way, the median seconds of a step; the speed-up of the second way over the first."""
    from bench.compare import ours, protocol
    from core.training.compiled import CompiledForward
    from core.training.denormals import flushing_denormals

    torch.manual_seed(0)
    first = ours.build(model_name, {})
    models = [first, copy.deepcopy(first)]
    runners = []
    for model, (optimizer, options) in zip(models, _ways(variant), strict=True):
        forward = CompiledForward(model, torch.device("cpu"), options) if compile else None
        runners.append((model, forward, optimizer(model.parameters(), lr=1e-3, fused=True)))
    data = ours.dataset(protocol.synthetic(max(batch_size * 4, 64)))
    g = torch.Generator().manual_seed(0)
    batches = [
        data.batch(torch.randint(0, len(data), (batch_size,), generator=g)) for _ in range(4)
    ]

    def run(way: int, n: int) -> float:
        model, forward, optimizer = runners[way]
        start = time.perf_counter()
        for i in range(n):
            optimizer.zero_grad(set_to_none=True)
            if forward is None:
                loss = model(batches[i % len(batches)]).loss
            else:
                with forward.active():
                    loss = model(batches[i % len(batches)]).loss
            loss.backward()
            optimizer.step()
        return (time.perf_counter() - start) / n

    seconds: list[list[float]] = [[], []]
    with flushing_denormals():
        for way in (0, 1):  # compile and warm up
            run(way, max(steps, 5))
        for r in range(rounds):
            for way in (0, 1) if r % 2 == 0 else (1, 0):
                seconds[way].append(run(way, steps))
    ratios = [a / b for a, b in zip(seconds[0], seconds[1], strict=True)]
    return {
        "variant": variant,
        "model": model_name,
        "batch_size": batch_size,
        "first_ms_per_step": 1e3 * median(seconds[0]),
        "second_ms_per_step": 1e3 * median(seconds[1]),
        "speedup": median(ratios),
        "speedup_runs": ratios,
    }


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    rows = [
        [r["variant"], *WAYS[r["variant"]], r["model"], r["batch_size"],
         f"{r['first_ms_per_step']:.3f}", f"{r['second_ms_per_step']:.3f}", f"{r['speedup']:.3f}x"]
        for r in results["runs"]
    ]  # fmt: skip
    head = ["variant", "first way", "second way", "model", "batch", "ms a step, first",
            "second", "speed-up"]  # fmt: skip
    method = (
        f"{'compiled' if p['compile'] else 'eager'} forward; two copies of the model in one "
        f"process, {p['steps']} steps each in turn, {p['rounds']} rounds, the order swapped "
        "every round; the speed-up is the median of the per-round ratios."
    )
    return report("Two ways of a training step, alternated in one process", results["machine"],
                  method, head, rows)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=comma_list, default=list(WAYS))
    parser.add_argument("--models", type=comma_list, default=["jmvae", "mvae"])
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="step_variants", help="the results' file name")
    args = parser.parse_args(argv)
    unknown = set(args.variants) - set(WAYS)
    if unknown:
        parser.error(f"--variants: unknown {sorted(unknown)}; known: {sorted(WAYS)}")
    compiled_only = sorted(set(LEFT_OUT) & set(args.variants))
    if compiled_only and not args.compile:
        parser.error(f"--variants {','.join(compiled_only)}: options of the compile, which "
                     "--no-compile leaves out")  # fmt: skip
    info = machine()
    runs = []
    for variant in args.variants:
        for model_name in args.models:
            for bs in args.batch_sizes:
                runs.append(measure(variant, model_name, bs, args.rounds, args.steps, args.compile))
                print(json.dumps(runs[-1]), flush=True)
    params = {k: getattr(args, k) for k in ("variants", "models", "batch_sizes", "rounds", "steps",
                                             "compile")}  # fmt: skip
    results = {"params": params, "runs": runs, "machine": finish(info)}
    write(args.name, results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
