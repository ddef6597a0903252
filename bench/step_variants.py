"""Two ways of running a training step, side by side in one process: torch's fused Adam
against LeanAdam (`adam`), the CPU compile without and with its bias pass (`bias`), with
inductor's Python wrapper against its C++ one (`wrapper`), and the compiled forward (autograd's
backward, then LeanAdam) against the whole step as one compiled graph (`fused`).

    python -m bench.step_variants [--variants adam,bias,wrapper,fused] [--models jmvae,mvae]
        [--batch-sizes 64,256] [--rounds 30] [--steps 20] [--no-compile] [--name step_variants]

Two copies of one model (bench/compare/protocol.py's networks, synthetic data, its first stage),
each with its own optimizer and compiled forward (or fused step), train in turns, `steps` steps
at a time, the order swapped every round, denormals flushed and the memory a step frees kept
as the Trainer does (before 2026-12-07, runs left the memory to glibc); the speed-up
is the median over rounds of the first way's seconds over the second's. Steps in turns within
one process see the same load, which whole runs a minute apart on a shared machine do not.
Results: bench/results/<name>.{json,md}.
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
    "fused": ("compiled forward, LeanAdam", "fused step"),
}
LEFT_OUT = {  # a compile variant: the option of `cpu_options()` its first way goes without
    # (inductor then uses its default: no such pass, the Python wrapper)
    "bias": "post_grad_custom_post_pass",
    "wrapper": "cpp_wrapper",
}


Step = Callable[[Any], None]


def _ways(variant: str, models: list[Any], compile: bool) -> list[Step]:
    """The training step of each way, each on its own copy of the model."""
    from core.training.lean_adam import LeanAdam

    if variant == "adam":
        return [
            _step(models[0], torch.optim.Adam, None, compile),
            _step(models[1], LeanAdam, None, compile),
        ]
    if variant == "fused":
        return [_step(models[0], LeanAdam, None, compile), _fused_step(models[1])]
    first, second = compile_options(variant)
    return [_step(models[0], LeanAdam, first, compile), _step(models[1], LeanAdam, second, compile)]


def compile_options(variant: str) -> list[dict[str, Any] | None]:
    """The compile options of each way of a variant in `LEFT_OUT` (None: the default ones)."""
    from core.training import compiled

    return [{k: v for k, v in compiled.cpu_options().items() if k != LEFT_OUT[variant]}, None]


def _step(model: Any, optimizer: Callable[..., Any], options: dict[str, Any] | None,
          compile: bool) -> Step:  # fmt: skip
    """zero_grad, (compiled) forward, backward, `optimizer`'s step; compile options None: the
    default passes."""
    from core.training.compiled import CompiledForward

    forward = CompiledForward(model, torch.device("cpu"), options) if compile else None
    opt = optimizer(model.parameters(), lr=1e-3, fused=True)

    def step(batch: Any) -> None:
        opt.zero_grad(set_to_none=True)
        if forward is None:
            loss = model(batch).loss
        else:
            with forward.active():
                loss = model(batch).loss
        loss.backward()
        opt.step()

    return step


def _fused_step(model: Any) -> Step:
    """The Trainer's fused step for the model's first stage (its first call an ordinary step)."""
    from core.training import compiled
    from core.training.config import TrainerConfig
    from core.training.fused_step import FusedStep
    from core.training.optimizers import StageOptimizers

    stage = model.stages[0]
    model.set_stage(stage.name)
    optimizers = StageOptimizers(model, stage, TrainerConfig(learning_rate=1e-3), 1)
    fused = FusedStep(model, optimizers, None, compiled.cpu_options())

    def step(batch: Any) -> None:
        if fused.step(batch) is None:
            optimizers.start_step()
            optimizers.step(model(batch).loss)
            fused.observe()

    return step


def measure(
    variant: str, model_name: str, batch_size: int, rounds: int, steps: int, compile: bool
) -> dict[str, Any]:
    """Per way, the median seconds of a step; the speed-up of the second way over the first."""
    from bench.compare import ours, protocol
    from core.training.allocator import keep_freed_memory
    from core.training.denormals import flushing_denormals

    torch.manual_seed(0)
    first = ours.build(model_name, {})
    steppers = _ways(variant, [first, copy.deepcopy(first)], compile)
    data = ours.dataset(protocol.synthetic(max(batch_size * 4, 64)))
    g = torch.Generator().manual_seed(0)
    batches = [
        data.batch(torch.randint(0, len(data), (batch_size,), generator=g)) for _ in range(4)
    ]

    def run(way: int, n: int) -> float:
        step = steppers[way]
        start = time.perf_counter()
        for i in range(n):
            step(batches[i % len(batches)])
        return (time.perf_counter() - start) / n

    seconds: list[list[float]] = [[], []]
    keep_freed_memory()  # as the Trainer does on the CPU (process-wide, both ways alike)
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
    compiled_only = sorted((set(LEFT_OUT) | {"fused"}) & set(args.variants))
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
