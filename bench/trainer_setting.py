"""Training samples/s with one of the Trainer's CPU settings on and off, each run in a fresh
process (the settings are process-wide), the two alternated round by round.

    python -m bench.trainer_setting --setting flush_denormals --warm-steps 1000
    python -m bench.trainer_setting --setting keep_freed_cpu_memory --name freed_memory

Models with the networks of bench/compare/protocol.py on its synthetic data, eager; the epochs
after `--warm-steps` optimizer steps (at least one epoch) are timed. Minor page faults per step
and the share of the optimizers' moments that are denormal floats at the end say where the time
went. Results: bench/results/<name>.{json,md}.
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
SETTINGS = {  # TrainerConfig field: what the report calls it
    "keep_freed_cpu_memory": "the memory a step frees kept",
    "flush_denormals": "denormal floats flushed to zero",
}


def denormal_share(optimizers: Any) -> float:
    """The share of the optimizers' floating-point state elements that are denormal."""
    import torch

    from core.training.denormals import denormal

    count, total = 0, 0
    for opt in optimizers.optimizers.values():
        for state in opt.state.values():
            for value in state.values():
                if torch.is_tensor(value) and value.is_floating_point() and value.numel() > 1:
                    count += int(denormal(value).sum())
                    total += value.numel()
    return count / max(total, 1)


def one_run(spec: dict[str, Any]) -> dict[str, float]:
    """Train `spec['model']` in this process with the setting `spec['on']`: steady samples/s
    and minor page faults per step of the timed epochs, denormal state at the end."""
    import torch

    from bench.compare import ours, protocol
    from core.training import Trainer

    torch.manual_seed(0)
    model = ours.build(spec["model"], {})
    clock = ours.EpochClock()
    steps = -(-spec["size"] // spec["batch_size"])
    untimed = protocol.warm_epochs(spec["warm_steps"], spec["size"], spec["batch_size"])
    config = ours.config(spec, untimed + spec["epochs"], 0).model_copy(
        update={spec["setting"]: spec["on"]}
    )
    trainer = Trainer(model, ours.dataset(protocol.synthetic(spec["size"])), None, config, [clock])
    trainer.fit()
    return {
        "samples_per_s": spec["size"] / median(clock.seconds[untimed:]),
        "faults_per_step": median(clock.faults[untimed:]) / steps,
        "denormal_share": denormal_share(trainer.optimizers),
    }


def measure(spec: dict[str, Any]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.trainer_setting", "--one", json.dumps(spec)],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(setting: str, models: list[str], sizes: list[int], rounds: int, common: dict) -> list:
    rows = []
    for name in models:
        for bs in sizes:
            runs: dict[bool, list[dict[str, float]]] = {True: [], False: []}
            for r in range(rounds):
                for on in (True, False) if r % 2 else (False, True):
                    spec = {**common, "model": name, "batch_size": bs, "setting": setting}
                    runs[on].append(measure({**spec, "on": on}))
            pairs = zip(runs[True], runs[False], strict=True)
            ratios = [on["samples_per_s"] / off["samples_per_s"] for on, off in pairs]
            row = {
                "model": name,
                "batch_size": bs,
                **{
                    f"{label}_{key}": median([x[key] for x in runs[on]])
                    for on, label in ((False, "off"), (True, "on"))
                    for key in ("samples_per_s", "faults_per_step", "denormal_share")
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
        [r["model"], r["batch_size"], f"{r['off_samples_per_s']:.0f}",
         f"{r['on_samples_per_s']:.0f}", f"{r['speedup']:.2f}x",
         f"{r['off_faults_per_step']:.0f} / {r['on_faults_per_step']:.0f}",
         f"{100 * r['off_denormal_share']:.1f} / {100 * r['on_denormal_share']:.1f}"]
        for r in results["runs"]
    ]  # fmt: skip
    head = ["model", "batch", "samples/s off", "on", "speed-up", "page faults a step off / on",
            "denormal moments % off / on"]  # fmt: skip
    method = (
        f"`{p['setting']}` off and on. Synthetic {p['size']} samples, eager, each run a fresh "
        f"process; {p['epochs']} epochs timed after {p['warm_steps']} optimizer steps (at "
        f"least one epoch); medians of {p['rounds']} alternated rounds, the speed-up the "
        "median of the per-round ratios. Denormal moments: the share of the optimizer state's "
        "elements that are denormal floats at the end of the run."
    )
    title = f"Training with {SETTINGS[p['setting']]} ({p['setting']})"
    return report(title, results["machine"], method, head, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    models = ["mvae", "jmvae", "mopoe", "mmvae", "mvtcae", "mmvae_plus"]
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="flush_denormals")
    parser.add_argument("--models", type=comma_list, default=models)
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=6400)
    parser.add_argument("--epochs", type=int, default=3, help="epochs timed")
    parser.add_argument("--warm-steps", type=int, default=0, help="steps before the timed ones")
    parser.add_argument("--name", help="results file name (default: the setting)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single run, in a child process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one_run(json.loads(args.one))))
        return 0
    info = machine()
    common = {"size": args.size, "epochs": args.epochs, "warm_steps": args.warm_steps}
    params = {"setting": args.setting, "models": args.models, "batch_sizes": args.batch_sizes,
              "rounds": args.rounds, **common}  # fmt: skip
    runs = run(args.setting, args.models, args.batch_sizes, args.rounds, common)
    results: dict[str, Any] = {"params": params, "runs": runs, "machine": finish(info)}
    write(args.name or args.setting, results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
