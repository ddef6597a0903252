"""Training on a dataset larger than a memory budget: an ArrayFolder (core/data/ondisk.py) of
64x64 RGB byte images + one-hot labels, trained from shuffled batches in a fresh process whose
peak resident memory is compared with the budget and with the data's size.

    python -m bench.ondisk_memory [--samples 200000] [--steps 300] [--budget-mib 1024]

The folder is written in chunks (the writer's memory is bounded by a chunk) to a temporary
directory and removed afterwards. Results: bench/results/ondisk_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.common import RESULTS_DIR, finish, machine, machine_line, table, write

SHAPE = (3, 64, 64)
CLASSES = 10


def chunks(n: int, size: int = 2000) -> Iterator:
    import torch

    from core.data import MultimodalDataset

    g = torch.Generator().manual_seed(0)
    for start in range(0, n, size):
        rows = min(size, n - start)
        images = torch.randint(0, 256, (rows, *SHAPE), generator=g, dtype=torch.uint8).float()
        y = torch.randint(CLASSES, (rows,), generator=g)
        label = torch.nn.functional.one_hot(y, CLASSES).float()
        yield MultimodalDataset({"image": images, "label": label}, labels=y)


def make_folder(root: Path, n: int) -> None:
    from core.data.ondisk import write_array_folder

    specs = [
        {"name": "image", "shape": list(SHAPE), "kind": "image", "value_range": [0, 1],
         "likelihood": {"kind": "laplace", "scale": 0.1}},
        {"name": "label", "shape": [CLASSES], "kind": "categorical",
         "likelihood": {"kind": "categorical"}},
    ]  # fmt: skip
    config = {"modalities": specs, "transforms": {"image": [{"kind": "scale", "factor": 1 / 255}]}}
    write_array_folder(root, chunks(n), n, config, dtypes={"image": "uint8", "label": "uint8"})


def train(root: str, steps: int, batch_size: int) -> dict:
    """In this (fresh) process: train an MVAE for `steps` shuffled batches; peak RSS after."""
    import torch

    from bench.common import hwm_mib, rss_mib
    from core.data.ondisk import ArrayFolder
    from core.models import build_model
    from core.training import Callback, Trainer

    folder = ArrayFolder(root)
    network = {"kind": "mlp", "hidden": [128]}
    config = {"model_type": "mvae", "latent_dim": 16, "modalities": folder.modality_specs()}
    model = build_model({**config, "encoder": network, "decoder": network})

    class StopAfter(Callback):
        def on_step_end(self, state) -> bool:
            return state.global_step >= steps

    torch.manual_seed(0)
    before = rss_mib()  # the interpreter, torch and the model, before any batch
    start = time.perf_counter()
    config = {"epochs": 1, "batch_size": batch_size, "device": "cpu", "log_every_steps": 50}
    Trainer(model, folder, None, config, [StopAfter()]).fit()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 1), "rss_before_mib": before, "peak_rss_mib": hwm_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--budget-mib", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--_train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._train:
        print(json.dumps(train(args._train, args.steps, args.batch_size)))
        return
    info = machine()
    with tempfile.TemporaryDirectory(prefix="ondisk-", dir=".") as tmp:
        root = Path(tmp) / "folder"
        start = time.perf_counter()
        make_folder(root, args.samples)
        write_s = time.perf_counter() - start
        on_disk = sum(p.stat().st_size for p in root.iterdir()) / 2**20
        argv = [sys.executable, "-m", "bench.ondisk_memory", "--_train", str(root)]
        argv += ["--steps", str(args.steps), "--batch-size", str(args.batch_size)]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        run = json.loads(out.stdout.strip().splitlines()[-1])
    as_float32 = args.samples * (3 * 64 * 64 + CLASSES) * 4 / 2**20
    results = {
        "machine": finish(info),
        "samples": args.samples,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "budget_mib": args.budget_mib,
        "on_disk_mib": round(on_disk),
        "in_memory_float32_mib": round(as_float32),
        "write_seconds": round(write_s, 1),
        **run,
        "within_budget": run["peak_rss_mib"] <= args.budget_mib,
    }
    trained = args.steps * args.batch_size
    within = "yes" if results["within_budget"] else "NO"
    row = [args.samples, round(on_disk), round(as_float32), trained, run["rss_before_mib"]]
    rows = [[*row, run["peak_rss_mib"], args.budget_mib, within]]
    markdown = (
        "# Training from a dataset on disk\n\n"
        + machine_line(info)
        + "\n\n"
        + table(
            [
                "samples",
                "on disk MiB",
                "as float32 MiB",
                "samples trained",
                "RSS before training MiB",
                "peak RSS MiB",
                "budget MiB",
                "within",
            ],
            rows,
        )
        + "\n\nMVAE, MLP [128], 64x64 RGB byte images + labels, shuffled batches read row by row "
        "from an ArrayFolder (`python -m bench.ondisk_memory`).\n"
    )
    write("ondisk_memory", results, markdown, args.out)
    print(markdown)


if __name__ == "__main__":
    main()
