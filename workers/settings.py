"""Job and worker settings from `MMVAE_*` environment variables (shared by the API and workers).

`MMVAE_REDIS_URL` (or `REDIS_URL`) selects Redis for broker, result backend and job records;
without it everything lives under `<data_dir>` (kombu filesystem transport, file results).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from workers.redaction import redact_tree

JOB_TYPES = ("train", "augment", "evaluate")
NAMED_RE = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")  # never a sha256 (64 hex characters)


class WorkerSettings(BaseSettings):
    """Where jobs live, their time limits and the Celery delivery guarantees."""

    model_config = SettingsConfigDict(env_prefix="MMVAE_", extra="ignore", case_sensitive=False)

    data_dir: Path = Field(Path("./data"), description="root of jobs/, datasets/, models/, broker/")
    store_dir: Path | None = Field(None, description="model store; default <data_dir>/models")
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("MMVAE_REDIS_URL", "REDIS_URL", "redis_url"),
        description="Redis for broker, results and job records; unset = embedded (files)",
    )
    # time limits per job type (soft: the task is told and fails cleanly; hard: it is killed)
    train_soft_time_limit_s: int = Field(6 * 3600, gt=0)
    train_time_limit_s: int = Field(6 * 3600 + 300, gt=0)
    augment_soft_time_limit_s: int = Field(1800, gt=0)
    augment_time_limit_s: int = Field(1800 + 120, gt=0)
    evaluate_soft_time_limit_s: int = Field(3600, gt=0)
    evaluate_time_limit_s: int = Field(3600 + 120, gt=0)
    visibility_timeout_s: int | None = Field(
        None, gt=0, description="Redis redelivery delay; default: longest hard limit + margin"
    )
    visibility_margin_s: int = Field(600, ge=0, description="added to the longest hard limit")
    allow_short_visibility_timeout: bool = Field(
        False, description="tests only: accept a visibility timeout below the longest job"
    )
    # limits checked at submission
    max_epochs: int = Field(1000, gt=0, description="trainer.epochs at most")
    max_augment_n: int = Field(1_000_000, gt=0, description="samples per augment job")
    max_eval_k: int = Field(5000, gt=0, description="importance samples per evaluate job")
    max_job_parameters: int = Field(
        200_000_000, gt=0, description="parameters a trained model may have"
    )
    max_job_batch_size: int = Field(65_536, gt=0, description="trainer.batch_size at most")
    job_devices: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="trainer.device values the workers can honour (comma-separated); empty: "
        "this machine's (auto, cpu, and cuda, cuda:<i> for each GPU it has)",
    )
    job_gpus: int | None = Field(
        None,
        ge=0,
        description="GPUs a worker may give one training job (resources.gpus at most); "
        "empty: the GPUs this machine has",
    )
    max_job_processes: int = Field(
        4, ge=1, le=64, description="CPU processes one training job may ask for"
    )
    named_datasets: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="datasets jobs may name, set by the operator: comma-separated name=source, "
        "source a folder of .npy arrays or <published>:<folder> (e.g. poly=polymnist:/data/poly)",
    )
    manifest_root: Path | None = Field(
        None,
        description="folder (seen at the same path by the service and every worker) whose "
        "files uploaded manifest CSVs may name; unset: manifest uploads are refused",
    )
    max_dataset_bytes: int = Field(
        256 * 1024 * 1024, gt=0, description="uploaded .npz or manifest size"
    )
    datasets_quota_bytes: int = Field(
        4 * 1024**3, gt=0, description="all uploaded datasets together, in bytes"
    )
    # worker behaviour
    lease_s: float = Field(30.0, gt=0, description="a running job's lease; renewed every lease/3")
    progress_interval_s: float = Field(1.0, ge=0, description="least time between progress writes")
    recovery_interval_s: float = Field(30.0, gt=0, description="orphaned-job scan period")
    max_tasks_per_child: int = Field(4, gt=0, description="recycle pool processes (GPU memory)")
    torch_threads: int | None = Field(None, gt=0, description="torch threads inside tasks")
    embedded_worker: bool = Field(True, description="`mmvae serve` starts a worker (embedded)")
    polling_interval_s: float = Field(0.5, gt=0, description="filesystem broker poll period")

    @model_validator(mode="after")
    def _check_limits(self) -> WorkerSettings:
        for kind in JOB_TYPES:
            soft, hard = self.time_limits(kind)
            if soft >= hard:
                raise ValueError(f"{kind}_soft_time_limit_s: must be below {kind}_time_limit_s")
        longest = max(self.time_limits(k)[1] for k in JOB_TYPES)
        vt = self.visibility_timeout_s
        if vt is not None and vt <= longest and not self.allow_short_visibility_timeout:
            raise ValueError(
                f"visibility_timeout_s: {vt} s is not above the longest hard time limit "
                f"({longest} s): Redis would redeliver running jobs"
            )
        return self

    @field_validator("job_devices", mode="before")
    @classmethod
    def _split_devices(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("named_datasets", mode="before")
    @classmethod
    def _split_named(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        if value.strip().startswith("{"):  # a JSON object, as the generated .env.example shows
            return json.loads(value)
        named = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, source = part.partition("=")
            if not sep or not name.strip() or not source.strip():
                raise ValueError(f"named_datasets: {part!r} is not name=source")
            named[name.strip()] = source.strip()
        return named

    @field_validator("named_datasets", mode="after")
    @classmethod
    def _check_names(cls, value: dict[str, str]) -> dict[str, str]:
        from core.data import BUILTIN_DATASETS

        for name in value:
            if not NAMED_RE.match(name) or name in BUILTIN_DATASETS:
                raise ValueError(
                    f"named_datasets: {name!r} must match {NAMED_RE.pattern} and not be a "
                    "built-in name"
                )
        return value

    def devices(self) -> list[str]:
        """What trainer.device may be: job_devices, else what this machine has."""
        if self.job_devices:
            return list(self.job_devices)
        import torch

        gpus = torch.cuda.device_count()
        return ["auto", "cpu", *(["cuda"] if gpus else []), *(f"cuda:{i}" for i in range(gpus))]

    def gpus(self) -> int:
        """GPUs a training job may ask for: job_gpus, else what this machine has."""
        if self.job_gpus is not None:
            return self.job_gpus
        import torch

        return torch.cuda.device_count()

    @property
    def embedded(self) -> bool:
        """True when no Redis URL is set: filesystem broker, file results and job records."""
        return not self.redis_url

    def time_limits(self, kind: str) -> tuple[int, int]:
        """(soft, hard) seconds for a job type."""
        return getattr(self, f"{kind}_soft_time_limit_s"), getattr(self, f"{kind}_time_limit_s")

    @property
    def effective_visibility_timeout(self) -> int:
        longest = max(self.time_limits(k)[1] for k in JOB_TYPES)
        return self.visibility_timeout_s or longest + self.visibility_margin_s

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def resolved_store_dir(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "models"

    def redact(self, value: Any) -> Any:
        """`value` (a message or a JSON-like record) without this deployment's absolute
        folders (workers/redaction.py)."""
        return redact_tree(value, self.data_dir, self.resolved_store_dir)
