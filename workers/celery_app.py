"""The Celery application, configured from `WorkerSettings`.

Embedded mode (no Redis URL): kombu's filesystem transport (with atomic writes,
workers/fs_transport.py) and a file result backend under `<data_dir>/broker`, so API + one
worker need no server. Redis mode: Redis for both, with a visibility timeout above the longest
hard time limit. Both: late acknowledgement, prefetch 1,
requeue when a worker dies, `gpu` queue for train/augment and `cpu` for evaluate.
This module never imports torch; tasks import it lazily inside the pool process.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from workers.settings import JOB_TYPES, WorkerSettings

QUEUES = {"train": "gpu", "augment": "gpu", "evaluate": "cpu"}
# kombu's filesystem transport with atomic message writes (see workers/fs_transport.py)
FILESYSTEM_TRANSPORT = "workers.fs_transport:Transport"


def task_name(kind: str) -> str:
    """Jobs are sent by name (`mmvae.train`, ...) so the API never imports the task code."""
    return f"mmvae.{kind}"


def _broker(settings: WorkerSettings) -> tuple[str, str, dict[str, Any]]:
    """(broker URL, result backend URL, broker transport options)."""
    if settings.redis_url:
        return (
            settings.redis_url,
            settings.redis_url,
            {
                "visibility_timeout": settings.effective_visibility_timeout,
                "socket_keepalive": True,
                "health_check_interval": 10,
                "retry_on_timeout": True,
            },
        )
    root = settings.broker_dir.resolve()
    for sub in ("queue", "control", "results"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    options = {
        "data_folder_in": str(root / "queue"),
        "data_folder_out": str(root / "queue"),
        "control_folder": str(root / "control"),
        "polling_interval": settings.polling_interval_s,
    }
    return "filesystem://", f"file://{root / 'results'}", options


def celery_config(settings: WorkerSettings) -> dict[str, Any]:
    """Celery settings (lower-case names) for `settings`."""
    broker, backend, transport = _broker(settings)
    annotations = {}
    for kind in JOB_TYPES:
        soft, hard = settings.time_limits(kind)
        annotations[task_name(kind)] = {"soft_time_limit": soft, "time_limit": hard}
    config: dict[str, Any] = {
        "broker_url": broker,
        "result_backend": backend,
        "broker_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,  # keep reconnecting (Redis restarts)
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "worker_max_tasks_per_child": settings.max_tasks_per_child,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "task_ignore_result": True,  # the job store holds outcomes; results are not needed
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": "cpu",
        "task_routes": {task_name(k): {"queue": q} for k, q in QUEUES.items()},
        "task_annotations": annotations,
        "worker_hijack_root_logger": False,
        "include": ["workers.tasks"],
    }
    if settings.redis_url:
        config["result_backend_transport_options"] = {
            "visibility_timeout": settings.effective_visibility_timeout
        }
    else:  # the filesystem transport has no fanout for remote control and events
        config["broker_transport"] = FILESYSTEM_TRANSPORT
        config["worker_enable_remote_control"] = False
        config["worker_send_task_events"] = False
    return config


def make_celery(settings: WorkerSettings | None = None) -> Celery:
    """A Celery app for `settings` (default: from the environment)."""
    settings = settings or WorkerSettings()
    config = celery_config(settings)
    include = config.pop("include")
    app = Celery("mmvae", include=include, set_as_current=False)
    app.conf.update(config)
    app.conf.mmvae_settings = settings.model_dump(mode="json")
    return app


_app: Celery | None = None


def __getattr__(name: str) -> Any:
    """`workers.celery_app.app`: built from the environment on first use (`celery -A ...`)."""
    global _app
    if name in ("app", "celery"):
        if _app is None:
            _app = make_celery()
        return _app
    raise AttributeError(name)
