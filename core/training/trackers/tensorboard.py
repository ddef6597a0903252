"""TensorBoard event files (`torch.utils.tensorboard`, needs the `tensorboard` package)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


class TensorBoardTracker:
    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        self.writer = SummaryWriter(str(log_dir))

    def log_config(self, config: dict[str, Any]) -> None:
        text = json.dumps(config, indent=2, default=str)
        self.writer.add_text("config", f"```\n{text}\n```", 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.writer.add_image(name, image, step, dataformats="HWC")

    def log_report(self, name: str, report: dict[str, Any], step: int) -> None:
        self.writer.add_text(name, f"```\n{json.dumps(report, indent=2, default=str)}\n```", step)

    def finish(self, status: str) -> None:
        self.writer.close()

    def link(self) -> dict[str, Any]:
        return {"kind": "tensorboard", "log_dir": str(self.log_dir)}
