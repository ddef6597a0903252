"""How busy training keeps the accelerator: per model, batch size and way, the `Trainer`'s
samples/s and the share of the step's wall time the device spends in kernels.

    python -m bench.gpu.busy --device cuda [--models mvae,mopoe] [--batch-sizes 64,256]
        [--ways eager,compile,loader] [--rounds 3] [--warm-steps 100] [--steps 200]

Ways: `eager`; `compile` (TrainerConfig.compile: on a GPU the compiled forward, Triton kernels);
`loader`, eager with each batch copied from host memory through a DataLoader
(`data_on_device="never"`) instead of indexed from a copy of the dataset on the device.

The networks and synthetic data of bench/compare/protocol.py (MLP 2x256, latent 16, digits-sized
modalities). Each round trains every way once, in turns (the order rotated round by round), a
fresh model each time: `warm-steps` untimed (compiling, caches), `steps` timed (the device
synchronised at both ends), then `profiled` more under torch's profiler, whose kernel and copy
intervals on the device give the busy share: their union over the span from the first one's
start to the last one's end. A small model on a fast GPU is limited by the host's work per step
(Python, kernel launches); a busy share near 1 says the host keeps ahead. On the CPU the script
times the same steps and reports no busy share. Results: bench/results/gpu_busy.{json,md}.
The results are written after each model and batch size, so a run cut short keeps what it
measured. bench/gpu/run.sh runs it on a GPU machine as one prepared command.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
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
    rotated,
    write,
)
from bench.compare import ours, protocol
from core.training import Callback, Trainer, TrainerConfig

WAYS: dict[str, dict[str, Any]] = {  # way -> TrainerConfig fields
    "eager": {},
    "compile": {"compile": True},  # on a GPU: the compiled forward (Triton kernels)
    "loader": {"data_on_device": "never"},  # eager, each batch copied from host memory
}


def busy_fraction(intervals: Sequence[tuple[float, float]]) -> float | None:
    """The share of the span from the earliest start to the latest end that the union of the
    (start, end) intervals covers; None for no interval or an empty span."""
    ordered = sorted((s, e) for s, e in intervals if e > s)
    if not ordered:
        return None
    covered, (run_start, run_end) = 0.0, ordered[0]
    for start, end in ordered[1:]:
        if start > run_end:  # a gap: close the run
            covered += run_end - run_start
            run_start, run_end = start, end
        else:
            run_end = max(run_end, end)
    covered += run_end - run_start
    return covered / (run_end - ordered[0][0])  # the last run ends last


def device_intervals(profile: torch.profiler.profile) -> list[tuple[float, float]]:
    """(start, end) in µs of every kernel, copy and fill the profile saw on an accelerator."""
    return [
        (e.time_range.start, e.time_range.end)
        for e in profile.events()
        if e.device_type != torch.autograd.DeviceType.CPU
    ]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Window(Callback):
    """A Trainer callback: times steps warm+1 .. warm+steps (the device synchronised at both
    ends), profiles the `profiled` after them on the device, then stops the training."""

    def __init__(self, device: torch.device, warm: int, steps: int, profiled: int) -> None:
        self.device, self.warm, self.steps, self.profiled = device, warm, steps, profiled
        self.done = 0
        self.timed_start = self.timed_end = 0.0
        activity = torch.profiler.ProfilerActivity
        self.profile = torch.profiler.profile(
            activities=[activity.CUDA if device.type == "cuda" else activity.CPU]
        )

    def on_step_end(self, state: Any) -> bool:
        self.done += 1
        if self.done == self.warm:
            synchronize(self.device)
            self.timed_start = time.perf_counter()
        if self.done == self.warm + self.steps:
            synchronize(self.device)
            self.timed_end = time.perf_counter()
            self.profile.__enter__()
        if self.done == self.warm + self.steps + self.profiled:
            synchronize(self.device)
            self.profile.__exit__(None, None, None)
            return True
        return False


def train(
    model_name: str, batch_size: int, way: str, device: str, warm: int, steps: int, profiled: int
) -> dict[str, Any]:
    """One fresh model trained by the Trainer for warm + steps + profiled steps: samples/s of
    the timed steps, and the busy share and kernels a step of the profiled ones."""
    torch.manual_seed(0)
    model = ours.build(model_name, {})
    data = ours.dataset(protocol.synthetic(batch_size * 50))
    config = TrainerConfig(
        epochs=100_000,  # the most allowed: the window stops the training
        batch_size=batch_size,
        device=device,
        drop_last=True,
        checkpoint_every_epochs=0,
        log_every_steps=10**6,
        seed=0,
        **WAYS[way],
    )
    window = Window(torch.device(device), warm, steps, profiled)
    Trainer(model, data, None, config, [window]).fit()
    seconds = window.timed_end - window.timed_start
    intervals = device_intervals(window.profile)
    return {
        "samples_per_s": batch_size * steps / seconds,
        "step_ms": 1e3 * seconds / steps,
        "busy": busy_fraction(intervals),
        "device_ops_per_step": len(intervals) / profiled,
        "steps_trained": window.done,
    }


def measure(
    model_name: str,
    batch_size: int,
    ways: Sequence[str],
    device: str,
    rounds: int,
    warm: int,
    steps: int,
    profiled: int,
) -> dict[str, Any]:
    """Every way `rounds` times, in turns; medians per way, and each way's speed over the
    first way's taken within each round."""
    runs: dict[str, list[dict[str, Any]]] = {way: [] for way in ways}
    for r in range(rounds):
        for way in rotated(list(ways), r):
            runs[way].append(train(model_name, batch_size, way, device, warm, steps, profiled))
            print(json.dumps({"model": model_name, "batch": batch_size, "way": way,
                              "round": r, **runs[way][-1]}), flush=True)  # fmt: skip
    out: dict[str, Any] = {"model": model_name, "batch_size": batch_size, "ways": {}}
    first = runs[ways[0]]
    for way, got in runs.items():
        busy = [g["busy"] for g in got if g["busy"] is not None]
        out["ways"][way] = {
            "samples_per_s": median([g["samples_per_s"] for g in got]),
            "step_ms": median([g["step_ms"] for g in got]),
            "busy": median(busy) if busy else None,
            "device_ops_per_step": median([g["device_ops_per_step"] for g in got]),
            "speedup": median(
                [g["samples_per_s"] / f["samples_per_s"] for g, f in zip(got, first, strict=True)]
            ),
            "runs": got,
        }
    return out


def markdown(results: dict[str, Any]) -> str:
    p = results["params"]
    rows = []
    for r in results["runs"]:
        for way, w in r["ways"].items():
            busy = "—" if w["busy"] is None else f"{100 * w['busy']:.0f} %"
            rows.append([r["model"], r["batch_size"], way, f"{w['samples_per_s']:,.0f}",
                         f"{w['step_ms']:.2f}", busy, f"{w['device_ops_per_step']:.0f}",
                         f"{w['speedup']:.2f}x"])  # fmt: skip
    head = ["model", "batch", "way", "samples/s", "ms a step", "device busy",
            "device operations a step", f"speed over {p['ways'][0]}"]  # fmt: skip
    method = (
        f"Device {p['device']} ({results['device_name']}); the Trainer on the synthetic data of "
        f"bench/compare/protocol.py; {p['warm_steps']} untimed steps, {p['steps']} timed, "
        f"{p['profiled_steps']} profiled; medians of {p['rounds']} rounds, the ways in turns; "
        "'device busy': the union of the device's kernels and copies over their span."
    )
    return report("How busy training keeps the device", results["machine"], method, head, rows)


def device_name(device: str) -> str:
    """What the results name the device: the GPU's model, or "the CPU"."""
    d = torch.device(device)
    return torch.cuda.get_device_name(d) if d.type == "cuda" else "the CPU"


def at_least_one(text: str) -> int:
    """A count of steps or rounds on the command line: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", type=comma_list, default=["mvae", "mopoe", "mvtcae", "jmvae"])
    parser.add_argument("--batch-sizes", type=comma_ints, default=[64, 256])
    parser.add_argument("--ways", type=comma_list, default=list(WAYS))
    parser.add_argument("--rounds", type=at_least_one, default=3)
    parser.add_argument("--warm-steps", type=at_least_one, default=100)
    parser.add_argument("--steps", type=at_least_one, default=200)
    parser.add_argument("--profiled-steps", type=at_least_one, default=20)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--name", default="gpu_busy")
    args = parser.parse_args(argv)
    args.ways = list(dict.fromkeys(args.ways))  # each way once, in the order given
    unknown = sorted(set(args.ways) - set(WAYS))
    if unknown:
        parser.error(f"--ways: {', '.join(unknown)} unknown; choose from {', '.join(WAYS)}")
    info = machine()
    params = {k: getattr(args, k) for k in ("device", "models", "batch_sizes", "ways", "rounds")}
    params.update(warm_steps=args.warm_steps, steps=args.steps, profiled_steps=args.profiled_steps)
    results: dict[str, Any] = {"params": params, "device_name": device_name(args.device)}
    results["runs"] = []
    steps = (args.warm_steps, args.steps, args.profiled_steps)
    for m in args.models:
        for bs in args.batch_sizes:
            results["runs"].append(measure(m, bs, args.ways, args.device, args.rounds, *steps))
            results["machine"] = finish(dict(info))
            write(args.name, results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
