"""Service settings from environment variables (prefix `MMVAE_`), validated by pydantic-settings.

List settings take comma-separated values (`MMVAE_API_KEYS=key1,key2`). Every field is documented
in the README's configuration table; the defaults suit a laptop on loopback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from workers.settings import WorkerSettings

CommaList = Annotated[list[str], NoDecode]


def _split(value: object) -> object:
    """`"a, b,,c"` → `["a", "b", "c"]`; lists pass through."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Everything the service reads from its environment; see the README for each default."""

    model_config = SettingsConfigDict(env_prefix="MMVAE_", extra="ignore", case_sensitive=False)

    # security
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="bearer keys; required on load/unload and job routes"
    )
    require_key_for_inference: bool = Field(False, description="also require a key on inference")
    allow_open: bool = Field(False, description="allow listening beyond loopback without keys")
    cors_origins: CommaList = Field(default_factory=list, description="allowed CORS origins")
    # models
    preload: CommaList = Field(
        default_factory=lambda: ["digits-demo"],
        description="models loaded at start: digits-demo, store:name[@version], hub:org/name@sha; "
        "`alias=spec` serves it under another name",
    )
    allow_unpinned_hub: bool = Field(False, description="allow Hub loads at a branch or tag")
    hub_org_allowlist: CommaList = Field(
        default_factory=list, description="Hub organisations loads may come from (empty: any)"
    )
    hub_endpoint: str | None = Field(
        None, description="Hub server (default: HF_ENDPOINT, else huggingface.co)"
    )
    max_models: int = Field(16, gt=0, description="loaded models at most")
    warmup: bool = Field(True, description="run one inference per model before it is ready")
    # data
    data_dir: Path = Field(Path("./data"), description="root of everything the service writes")
    store_dir: Path | None = Field(None, description="model store; default <data_dir>/models")
    # limits
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0, description="request body size → 413")
    body_timeout_s: float = Field(
        30.0, gt=0, description="longest wait for the next piece of a request body → 408"
    )
    max_batch_size: int = Field(256, gt=0, description="samples per request and per forward pass")
    max_n_samples: int = Field(64, gt=0, description="n_samples per request")
    max_total_outputs: int = Field(16384, gt=0, description="batch size × n_samples per request")
    max_k: int = Field(5000, gt=0, description="importance samples K for log-likelihood")
    max_image_pixels: int = Field(1_000_000, gt=0, description="pixels of an uploaded PNG")
    max_eval_samples: int = Field(2000, gt=0, description="evaluate synchronously up to this")
    max_map_points: int = Field(2000, gt=0, description="points of one latent map (latent-map n)")
    max_output_values: int = Field(
        4 * 1024 * 1024, gt=0, description="floats one answer may hold (service/costs.py)"
    )
    max_png_pixels: int = Field(
        4 * 1024 * 1024, gt=0, description="PNG pixels one answer may render, png_scale included"
    )
    max_request_work: int = Field(
        10**10,
        gt=0,
        description="model passes × parameters one request may cost (about 5 s of one core for "
        "the demo model)",
    )
    heavy_request_work: int = Field(
        25 * 10**7,
        gt=0,
        description="requests costing more work run in the heavy lane, apart from cheap ones",
    )
    # serving
    batching: bool = Field(True, description="merge concurrent requests into one forward pass")
    batch_wait_ms: float = Field(2.0, ge=0, description="longest wait for a batch to fill")
    queue_size: int = Field(256, gt=0, description="pending requests per model and operation")
    admission_wait_s: float = Field(
        1.0,
        ge=0,
        description="a request finding its queue full waits this long for a place before its "
        "503; refusing at once lets clients that ignore Retry-After starve the server "
        "(service/batching.py)",
    )
    max_connections: int = Field(
        2048,
        gt=0,
        description="open connections and requests uvicorn serves at once (its "
        "limit_concurrency); beyond it a new request gets an immediate 503 before its body is "
        "read: bounds the memory of requests waiting for a queue place",
    )
    request_timeout_s: float = Field(30.0, gt=0, description="per-request inference timeout")
    shutdown_grace_s: float = Field(
        10.0, gt=0, description="on SIGTERM/SIGINT: time in-flight requests get to finish"
    )
    inference_workers: int = Field(1, gt=0, description="threads running forward passes")
    heavy_workers: int = Field(
        1, gt=0, description="threads running heavy requests (MMVAE_HEAVY_REQUEST_WORK)"
    )
    torch_threads: int | None = Field(
        1,
        gt=0,
        description="torch intra-op threads in the API process; 1 by default: batching, not "
        "intra-op threads, gives a small model's server its throughput, and extra threads fight "
        "the event loop for the cores (bench/RESULTS.md); raise it for large models",
    )
    direct_dispatch: bool = Field(
        True,
        description="serve the inference routes from the middleware stack, not through "
        "FastAPI's router (same answers, ~25 % more generate throughput on a small model; "
        "service/direct_dispatch.py); off: every request goes through the router",
    )
    gc_tuning: bool = Field(
        True,
        description="collect the youngest generation less often and freeze the objects that "
        "exist after startup and each model load out of the cyclic GC (removes ~150 ms pauses; "
        "service/gc_tuning.py)",
    )
    # jobs (the rest of their settings: workers.settings.WorkerSettings, same MMVAE_ prefix)
    jobs_enabled: bool = Field(True, description="serve /v1/jobs and /v1/datasets")
    # web UI
    ui: bool = Field(
        True, description="serve the web UI at /ui (static files; it calls the public API only)"
    )
    # logging
    log_level: str = Field("INFO", description="Python log level")
    log_json: bool = Field(True, description="structured JSON log lines")

    _split_lists = field_validator(
        "api_keys", "cors_origins", "preload", "hub_org_allowlist", mode="before"
    )(_split)

    @property
    def keys(self) -> list[str]:
        return [k.get_secret_value() for k in self.api_keys]

    def job_settings(self) -> WorkerSettings:
        """Job settings from the environment, sharing this service's data and store folders."""
        return WorkerSettings(data_dir=self.data_dir, store_dir=self.store_dir)

    @property
    def resolved_store_dir(self) -> Path:
        return self.store_dir if self.store_dir is not None else self.data_dir / "models"
