"""Python function calls per training step: a count, not a time, so it does not depend on how
busy the machine is. Per-step overhead (the Trainer, the model's Python, the optimizer) shows
up here long before it shows up in noisy timings.

Each model trains through the real `Trainer` on synthetic digits-shaped data in a fresh
interpreter; `cProfile` counts every call (Python and builtin) over steps 20 to 60.

    python -m bench.calls [--models mvae,...] [--batch-size 8] [--root TREE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS_DIR, finish, machine, machine_line, table, write
from bench.training import LATENT_DIM, MODELS, NETWORK, modality_specs

ROOT = Path(__file__).resolve().parent.parent
FIRST, LAST = 20, 60


def worker(model_type: str, batch_size: int) -> dict[str, Any]:
    import cProfile
    import pstats

    import torch

    from bench.training import make_dataset
    from core.models import build_model
    from core.training import Trainer, TrainerConfig
    from core.training.callbacks import Callback

    torch.manual_seed(0)
    data = make_dataset("synthetic", 2, batch_size * (LAST + 5))
    config = {"model_type": model_type, "latent_dim": LATENT_DIM, **NETWORK}
    model = build_model({**config, "modalities": modality_specs("synthetic", 2)})
    profile = cProfile.Profile()

    class Window(Callback):
        def on_step_end(self, state: Any) -> bool:
            if state.global_step == FIRST:
                profile.enable()
            if state.global_step == LAST:
                profile.disable()
                return True
            return False

    cfg = TrainerConfig(
        epochs=1, batch_size=batch_size, device="cpu", checkpoint_every_epochs=0,
        log_every_steps=10**6,
    )  # fmt: skip
    Trainer(model, data, config=cfg, callbacks=[Window()]).fit()
    stats = pstats.Stats(profile)
    steps = LAST - FIRST
    return {
        "model": model_type,
        "batch_size": batch_size,
        "calls_per_step": round(stats.total_calls / steps),  # profiler's own calls round away
    }


def run_one(model_type: str, batch_size: int, root: Path) -> dict[str, Any]:
    """`worker` in a fresh interpreter on the source tree `root` (this file runs as a script,
    so an older tree without it can be counted too)."""
    script = [sys.executable, str(Path(__file__).resolve())]
    out = subprocess.run(
        [*script, "--worker", model_type, "--batch-size", str(batch_size)],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--root", type=Path, default=ROOT, help="source tree to count")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="output folder")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.batch_size)))
        return 0
    info = machine()
    runs = [run_one(m, args.batch_size, args.root.resolve()) for m in args.models.split(",") if m]
    results = {"machine": finish(info), "root": str(args.root.resolve()), "runs": runs}
    rows = [[r["model"], r["batch_size"], round(r["calls_per_step"])] for r in runs]
    text = "\n".join(
        [
            "# Python calls per training step",
            "",
            machine_line(results["machine"]),
            f"cProfile over steps {FIRST}-{LAST} of the real Trainer, "
            f"MLP {NETWORK['encoder']['hidden']}.",
            "",
            table(["model", "batch", "calls/step"], rows),
        ]
    )
    write("calls", results, text + "\n", args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
