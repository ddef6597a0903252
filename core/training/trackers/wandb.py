"""A Weights & Biases run (needs `wandb`), offline by default: a run folder under `dir` that
`wandb sync` uploads later, nothing sent during training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


class WandbTracker:
    def __init__(self, project: str, mode: str, directory: Path, run_name: str | None) -> None:
        import wandb

        directory.mkdir(parents=True, exist_ok=True)
        self.wandb = wandb
        settings = wandb.Settings(init_timeout=300, x_disable_stats=True, silent=True)
        self.run = wandb.init(
            project=project, mode=mode, dir=str(directory), name=run_name, reinit="create_new",
            settings=settings,
        )  # fmt: skip

    def log_config(self, config: dict[str, Any]) -> None:
        self.run.config.update(config, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.run.log({name: self.wandb.Image(image)}, step=step)

    def log_report(self, name: str, report: dict[str, Any], step: int) -> None:
        self.run.summary[name] = report

    def finish(self, status: str) -> None:
        self.run.finish(exit_code=0 if status == "finished" else 1)

    def link(self) -> dict[str, Any]:
        folder = Path(self.run.dir).parent if self.run.dir else None
        return {"kind": "wandb", "run_id": self.run.id, "dir": str(folder) if folder else None,
                "mode": self.run.settings.mode}  # fmt: skip
