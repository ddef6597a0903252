"""What `TrainerConfig.trackers` may name: TensorBoard, MLflow and Weights & Biases (offline
by default), each an optional dependency (`pip install mmvae-service[tensorboard]`, `[mlflow]`,
`[wandb]`). Locations default to the run's output folder."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorBoardSpec(_Strict):
    kind: Literal["tensorboard"] = "tensorboard"
    log_dir: str | None = Field(
        None, description="event files' folder; None: <output_dir>/tensorboard"
    )


class MLflowSpec(_Strict):
    kind: Literal["mlflow"] = "mlflow"
    tracking_uri: str | None = Field(
        None, description="None: MLFLOW_TRACKING_URI, else MLflow's own default"
    )
    experiment: str = Field("mmvae", min_length=1, max_length=200)
    run_name: str | None = Field(None, max_length=200)


class WandbSpec(_Strict):
    kind: Literal["wandb"] = "wandb"
    project: str = Field("mmvae", min_length=1, max_length=128)
    mode: Literal["offline", "online", "disabled"] = Field(
        "offline", description="offline: a run folder to `wandb sync` later"
    )
    dir: str | None = Field(None, description="None: <output_dir> (runs in <dir>/wandb)")
    run_name: str | None = Field(None, max_length=200)


TrackerSpec = Annotated[TensorBoardSpec | MLflowSpec | WandbSpec, Field(discriminator="kind")]
LOCATIONS = {"tensorboard": ("log_dir",), "mlflow": ("tracking_uri",), "wandb": ("dir", "mode")}
