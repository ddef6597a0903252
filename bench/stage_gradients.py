"""A later training stage's steps with gradients for every parameter against gradients only for
those its optimizer steps (the Trainer's `StageFreezer`), alternated in one process.

    python -m bench.stage_gradients [--models telbo:unimodal,jnf:flows] [--batch-sizes 64,256]

Models with the networks of bench/compare/protocol.py on its synthetic data, eager, told their
stage; each round times one pass over the batches both ways, in turns; the speed-up is the
median of the rounds' ratios. Also checks that the stepped parameters' gradients are
bit-identical both ways. Results: bench/results/stage_gradients.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import sys
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


def measure(model_name: str, stage: str, batch_size: int, rounds: int, steps: int) -> dict:
    """Samples/s of `stage`'s training steps with all gradients and with the stage's only
    (passes of `steps` steps, alternated `rounds` times), the speed-up, and whether the stepped
    parameters' gradients are identical both ways."""
    from bench.compare import ours, protocol
    from core.training.batches import iterate, shuffled_batches
    from core.training.freezing import StageFreezer

    torch.manual_seed(0)
    model = ours.build(model_name, {}).train()
    model.set_stage(stage)
    (spec,) = [s for s in model.stages if s.name == stage]
    stepped = [p for o in model.configure_optimizers(spec).values() for p in o.parameters]
    optimizer = torch.optim.Adam(stepped, lr=1e-3, fused=True)
    freezer = StageFreezer(model)
    data = ours.dataset(protocol.synthetic(batch_size * steps))
    order = shuffled_batches(len(data), batch_size, 0, 1)
    batches = list(iterate(data, order, torch.device("cpu")))

    def gradients_for(stage_only: bool) -> None:
        if stage_only:
            freezer.freeze_all_but(stepped)
        else:
            freezer.restore()

    def one_pass(frozen: bool) -> float:
        gradients_for(frozen)
        start = time.perf_counter()
        for batch in batches:
            model.zero_grad(set_to_none=True)
            model(batch).loss.backward()
            optimizer.step()
        return time.perf_counter() - start

    def gradients(frozen: bool) -> list[torch.Tensor]:
        gradients_for(frozen)
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)
        model(batches[0]).loss.backward()
        return [p.grad.clone() for p in stepped]

    same = all(torch.equal(a, b) for a, b in zip(gradients(False), gradients(True), strict=True))
    one_pass(False), one_pass(True)  # warm-up
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for frozen in (False, True) if r % 2 == 0 else (True, False):
            seconds[frozen].append(one_pass(frozen))
    freezer.restore()
    ratios = [a / b for a, b in zip(seconds[False], seconds[True], strict=True)]
    n = batch_size * steps
    return {
        "model": model_name, "stage": stage, "batch_size": batch_size,
        "all_samples_per_s": n / median(seconds[False]),
        "stage_only_samples_per_s": n / median(seconds[True]),
        "speedup": median(ratios), "speedup_runs": ratios, "gradients_identical": same,
    }  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    rows = [
        [f"{r['model']} {r['stage']}", r["batch_size"], f"{r['all_samples_per_s']:.0f}",
         f"{r['stage_only_samples_per_s']:.0f}", f"{r['speedup']:.2f}x",
         "yes" if r["gradients_identical"] else "NO"]
        for r in results["runs"]
    ]  # fmt: skip
    head = ["model and stage", "batch", "samples/s, all gradients", "stage's only", "speed-up",
            "gradients identical"]  # fmt: skip
    method = (
        f"{p['steps']} steps per pass, eager, one process; medians of {p['rounds']} "
        "alternated passes each way, the speed-up the median of the per-round ratios."
    )
    return report(
        "A later stage's steps: gradients for all parameters vs the stage's only",
        results["machine"],
        method,
        head,
        rows,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=comma_list, default=["telbo:unimodal", "jnf:flows"])
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    info = machine()
    runs = []
    for entry in args.models:
        model_name, stage = entry.split(":")
        for bs in args.batch_sizes:
            runs.append(measure(model_name, stage, bs, args.rounds, args.steps))
            print(json.dumps(runs[-1]), flush=True)
    results = {"params": {"models": args.models, "batch_sizes": args.batch_sizes,
                          "rounds": args.rounds, "steps": args.steps}, "runs": runs}  # fmt: skip
    results["machine"] = finish(info)
    write("stage_gradients", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
