"""An MLflow run (needs `mlflow` or `mlflow-skinny`): parameters, metrics by step, images as
artifacts. Logged through an `MlflowClient` bound to its tracking URI, so several runs (and the
process's own MLflow state) never mix."""

from __future__ import annotations

from typing import Any

import numpy as np


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out |= _flat(value, f"{name}.")
        else:
            out[name] = str(value)[:500]  # MLflow's parameter values are bounded
    return out


class MLflowTracker:
    def __init__(self, tracking_uri: str | None, experiment: str, run_name: str | None) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri)
        self.tracking_uri = self.client.tracking_uri
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
        self.run = self.client.create_run(experiment_id, run_name=run_name)
        self.run_id = self.run.info.run_id
        self.experiment_id = experiment_id

    def log_config(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in _flat(config).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 per batch
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k.replace("/", "_"), float(v), now, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_image(self, name: str, image: np.ndarray, step: int) -> None:
        self.client.log_image(self.run_id, image, artifact_file=f"{name}/step-{step:08d}.png")

    def log_report(self, name: str, report: dict[str, Any], step: int) -> None:
        self.client.log_dict(self.run_id, report, f"{name}/step-{step:08d}.json")

    def finish(self, status: str) -> None:
        self.client.set_terminated(self.run_id, "FINISHED" if status == "finished" else "KILLED")

    def link(self) -> dict[str, Any]:
        return {"kind": "mlflow", "tracking_uri": self.tracking_uri,
                "experiment_id": self.experiment_id, "run_id": self.run_id}  # fmt: skip
