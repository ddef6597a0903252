"""Experiment tracking: TensorBoard, MLflow and Weights & Biases runs fed by one Trainer
callback (`TrainerConfig.trackers`). Each tracker's library is an optional dependency, imported
only when a run asks for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.training.trackers.base import Tracker, TrackerCallback
from core.training.trackers.specs import LOCATIONS, TrackerSpec

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}


def open_tracker(spec: Any, output_dir: Path | None) -> Tracker:
    """The run `spec` describes; ValueError naming the missing package or folder."""
    base = output_dir if output_dir is not None else None
    try:
        if spec.kind == "tensorboard":
            from core.training.trackers.tensorboard import TensorBoardTracker

            folder = spec.log_dir or (base / "tensorboard" if base else None)
            if folder is None:
                raise ValueError("trackers: tensorboard needs log_dir or an output_dir")
            return TensorBoardTracker(Path(folder))
        if spec.kind == "mlflow":
            from core.training.trackers.mlflow import MLflowTracker

            return MLflowTracker(spec.tracking_uri, spec.experiment, spec.run_name)
        from core.training.trackers.wandb import WandbTracker

        folder = spec.dir or base
        if folder is None:
            raise ValueError("trackers: wandb needs dir or an output_dir")
        return WandbTracker(spec.project, spec.mode, Path(folder), spec.run_name)
    except ImportError as err:
        raise ValueError(
            f"trackers: {spec.kind} needs its library ({err.name}); install it with "
            f"pip install 'mmvae-service[{EXTRAS[spec.kind]}]'"
        ) from None


def log_evaluation(
    specs: list[Any], report: dict[str, Any], folder: Path | None, config: dict[str, Any]
) -> list[dict[str, Any]]:
    """Send an evaluation to new tracker runs: `config`, the report's metrics (whole, and each
    number as `evaluation/<metric>/<field>`) and the PNG figures in `folder`; their links."""
    import numpy as np
    from PIL import Image
    from pydantic import TypeAdapter

    parsed = TypeAdapter(list[TrackerSpec]).validate_python(specs)
    callback = TrackerCallback([open_tracker(s, folder) for s in parsed], config)
    for tracker in callback.trackers:
        tracker.log_config(config)
    callback.log_report("evaluation", report["metrics"], 0)
    for png in sorted(folder.glob("*.png")) if folder is not None else []:
        with Image.open(png) as image:
            callback.log_image(f"evaluation/{png.stem}", np.asarray(image.convert("RGB")), 0)
    for tracker in callback.trackers:
        tracker.finish("finished")
    return callback.links()


__all__ = [
    "LOCATIONS", "Tracker", "TrackerCallback", "TrackerSpec", "log_evaluation", "open_tracker",
]  # fmt: skip
