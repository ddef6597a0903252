"""Training throughput (samples/s) and peak memory per model, dataset and batch size, and the
cost of the number of modalities M for MoPoE and MVAE (2^M - 1 subsets for MoPoE).

Every configuration runs in its own subprocess, so its peak RSS (`ru_maxrss`) is its own:
tracemalloc does not see torch's CPU allocations. Throughput is timed through the real `Trainer`
(a callback stops it after warm-up + repeats x steps, drop_last so every step has a full batch)
and also for a bare forward/backward/Adam loop on the same batches; the ratio is the Trainer's
own overhead. Figures are medians over the repeats.

    python -m bench.training [--quick] [--out DIR] [--root TREE]

`--root` times another source tree (a checkout of an older commit) with this driver, for
before/after comparisons (`bench.before_after`).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import (
    RESULTS_DIR,
    comma_ints,
    comma_list,
    finish,
    machine,
    machine_line,
    median,
    table,
    write,
)

MODELS = ("mvae", "mopoe", "jmvae", "mmvae", "mvtcae")
NETWORK = {
    "encoder": {"kind": "mlp", "hidden": [256, 256]},
    "decoder": {"kind": "mlp", "hidden": [256, 256]},
}
LATENT_DIM = 16
SYNTHETIC_SIZE = 60_000
IMAGE = {"shape": [1, 8, 8], "kind": "image", "likelihood": {"kind": "bernoulli"}}
LABEL = {"shape": [10], "kind": "categorical", "likelihood": {"kind": "categorical"}}


def modality_specs(dataset: str, m: int) -> list[dict[str, Any]]:
    """digits and synthetic: image [1, 8, 8] + label [10]; synthetic-M: M images [1, 8, 8]."""
    if dataset in ("digits", "synthetic"):
        return [{"name": "image", **IMAGE}, {"name": "label", **LABEL}]
    return [{"name": f"m{i}", **IMAGE} for i in range(m)]


def make_dataset(dataset: str, m: int, size: int) -> Any:
    import torch

    from core.data import MultimodalDataset, load_builtin

    if dataset == "digits":
        return load_builtin("digits", "train")
    g = torch.Generator().manual_seed(0)
    if dataset == "synthetic":
        labels = torch.randint(0, 10, (size,), generator=g)
        data = {
            "image": torch.rand(size, 1, 8, 8, generator=g),
            "label": torch.nn.functional.one_hot(labels, 10).float(),
        }
        return MultimodalDataset(data, labels=labels)
    return MultimodalDataset({f"m{i}": torch.rand(size, 1, 8, 8, generator=g) for i in range(m)})


def worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One configuration, in this (fresh) process: Trainer and bare-loop throughput, peak RSS."""
    import torch

    from bench.common import peak_rss_mib, rss_mib
    from core.models import build_model
    from core.training import Trainer, TrainerConfig
    from core.training.callbacks import Callback

    torch.manual_seed(0)
    bs, warm, steps, repeats = spec["batch_size"], spec["warmup"], spec["steps"], spec["repeats"]
    data = make_dataset(spec["dataset"], spec["modalities"], spec["size"])
    config = {
        "model_type": spec["model"],
        "latent_dim": LATENT_DIM,
        **NETWORK,
        "modalities": modality_specs(spec["dataset"], spec["modalities"]),
    }
    model = build_model(config)
    rss_before = rss_mib()
    stamps: list[float] = []
    total = warm + steps * repeats

    class Clock(Callback):
        def on_step_end(self, state: Any) -> bool:
            stamps.append(time.perf_counter())
            return len(stamps) >= total

    cfg = TrainerConfig(
        epochs=100_000,
        batch_size=bs,
        drop_last=True,
        device="cpu",
        checkpoint_every_epochs=0,
        log_every_steps=10**6,
    )
    Trainer(model, data, config=cfg, callbacks=[Clock()]).fit()
    chunks = [stamps[warm - 1 + i * steps : warm + (i + 1) * steps] for i in range(repeats)]
    trainer_rates = [bs * steps / (c[-1] - c[0]) for c in chunks]

    # the same steps without the Trainer: model(batch).loss, backward, Adam
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(len(data))
    batches = [
        data.batch(order[torch.arange(i * bs, (i + 1) * bs) % len(data)]) for i in range(total)
    ]
    bare: list[float] = []
    for batch in batches:
        opt.zero_grad(set_to_none=True)
        model(batch).loss.backward()
        opt.step()
        bare.append(time.perf_counter())
    bare_rates = [
        bs * steps / (bare[warm - 1 + (i + 1) * steps] - bare[warm - 1 + i * steps])
        for i in range(repeats)
    ]
    return {
        **spec,
        "samples_per_s": round(median(trainer_rates), 1),
        "samples_per_s_runs": [round(r, 1) for r in trainer_rates],
        "step_ms": round(1000 * bs / median(trainer_rates), 2),
        "bare_loop_samples_per_s": round(median(bare_rates), 1),
        "trainer_overhead": round(median(bare_rates) / median(trainer_rates) - 1, 3),
        "rss_after_setup_mib": rss_before,
        "peak_rss_mib": peak_rss_mib(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "torch_threads": torch.get_num_threads(),
    }


ROOT = Path(__file__).resolve().parent.parent


def run_config(spec: dict[str, Any], root: Path = ROOT) -> dict[str, Any]:
    """`worker(spec)` in a fresh interpreter (its own peak RSS), on the source tree `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "bench.training", "--worker", json.dumps(spec)],
        capture_output=True,
        text=True,
        check=False,
        cwd=root,
        env=env,
    )
    if out.returncode != 0:
        raise RuntimeError(f"training benchmark {spec} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def plan(args: argparse.Namespace) -> list[dict[str, Any]]:
    base = {"warmup": args.warmup, "steps": args.steps, "repeats": args.repeats, "size": args.size}
    specs = [
        {**base, "part": "models", "model": model, "dataset": ds, "modalities": 2, "batch_size": bs}
        for ds in args.datasets
        for bs in args.batch_sizes
        for model in args.models
    ]
    specs += [
        {
            **base,
            "part": "modalities",
            "model": model,
            "dataset": "synthetic-M",
            "modalities": m,
            "batch_size": args.m_batch_size,
        }
        for model in args.m_models
        for m in args.m_values
    ]
    return specs


def markdown(results: dict[str, Any]) -> str:
    rows = [
        [
            r["model"],
            r["dataset"],
            r["batch_size"],
            r["samples_per_s"],
            r["step_ms"],
            f"{r['trainer_overhead']:+.0%}",
            r["peak_rss_mib"],
        ]
        for r in results["runs"]
        if r["part"] == "models"
    ]
    mrows = [
        [
            r["model"],
            r["modalities"],
            2 ** r["modalities"] - 1,
            r["samples_per_s"],
            r["step_ms"],
            r["peak_rss_mib"],
        ]
        for r in results["runs"]
        if r["part"] == "modalities"
    ]
    p = results["params"]
    return (
        "\n".join(
            [
                "# Training throughput",
                "",
                machine_line(results["machine"]),
                f"MLP encoders/decoders {NETWORK['encoder']['hidden']}, latent {LATENT_DIM}; Adam; "
                f"median of {p['repeats']} runs of {p['steps']} steps after {p['warmup']} warm-up "
                "steps; "
                "peak RSS of a fresh process per row (ru_maxrss, includes torch itself).",
                "",
                table(
                    [
                        "model",
                        "dataset",
                        "batch",
                        "samples/s",
                        "step ms",
                        "Trainer overhead",
                        "peak RSS MiB",
                    ],
                    rows,
                ),
                "",
                "## Cost of the number of modalities (synthetic images [1, 8, 8], batch 256)",
                "",
                table(
                    ["model", "M", "MoPoE subsets 2^M-1", "samples/s", "step ms", "peak RSS MiB"],
                    mrows,
                ),
            ]
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats")
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--datasets", default=None, help="default digits,synthetic (quick: synthetic)"
    )
    parser.add_argument("--batch-sizes", default="64,256")
    parser.add_argument("--m-models", default="mopoe,mvae", help="models for the M sweep")
    parser.add_argument("--m-values", default=None, help="default 2,3,5,8 (quick: 2,8); '' = none")
    parser.add_argument("--m-batch-size", type=int, default=256, help="batch of the M sweep")
    parser.add_argument("--size", type=int, default=SYNTHETIC_SIZE, help="synthetic samples")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="steps per timed run")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (median)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to time")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.datasets is None:
        args.datasets = "synthetic" if args.quick else "digits,synthetic"
    if args.m_values is None:
        args.m_values = "2,8" if args.quick else "2,3,5,8"
    args.warmup = args.warmup or (2 if args.quick else 5)
    args.steps = args.steps or (5 if args.quick else 20)
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.models, args.datasets, args.m_models = (
        comma_list(args.models),
        comma_list(args.datasets),
        comma_list(args.m_models),
    )
    args.batch_sizes = comma_ints(args.batch_sizes)
    args.m_values = comma_ints(args.m_values)
    info = machine()
    runs = []
    for spec in plan(args):
        runs.append(run_config(spec, args.root.resolve()))
        r = runs[-1]
        print(
            f"{r['model']:7} {r['dataset']:12} M={r['modalities']} bs={r['batch_size']:4} "
            f"{r['samples_per_s']:9.1f} samples/s  peak {r['peak_rss_mib']} MiB",
            flush=True,
        )
    results = {
        "machine": finish(info),
        "params": {k: getattr(args, k) for k in ("warmup", "steps", "repeats", "size")},
        "root": str(args.root.resolve()),
        "runs": runs,
    }
    write("training", results, markdown(results), args.out)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
