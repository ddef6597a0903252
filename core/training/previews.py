"""Preview images every N epochs: conditional generations of the first samples of the eval
set (else the training set) as PNG grids in `<output_dir>/previews/` and in the trackers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.training.callbacks import Callback, TrainerState, writing_process

FOLDER = "previews"


class Previews(Callback):
    """Every `every` epochs (and after the last), rank 0 renders `core.metrics.visualization
    .preview_grids` from a fixed generator, so previews of two epochs differ by the weights
    only."""

    def __init__(self, model: Any, dataset: Any, every: int, n: int, tracking: Any) -> None:
        self.model, self.dataset, self.every, self.n = model, dataset, every, n
        self.tracking = tracking
        self.written: list[Path] = []

    def on_epoch_end(self, state: TrainerState) -> None:
        if not writing_process():
            return
        if state.epoch % self.every and state.epoch != state.epochs:
            return
        from core.metrics.visualization import preview_grids

        generator = torch.Generator(device=next(self.model.parameters()).device).manual_seed(0)
        grids = preview_grids(self.model, self.dataset, self.n, generator)
        for name, image in grids.items():
            if state.output_dir is not None:
                path = state.output_dir / FOLDER / f"{name}-epoch-{state.epoch:04d}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, format="PNG")
                self.written.append(path)
            if self.tracking is not None:
                self.tracking.log_image(f"preview/{name}", np.asarray(image.convert("RGB")),
                                        state.global_step)  # fmt: skip
