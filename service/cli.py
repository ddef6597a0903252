"""`mmvae serve`: run the HTTP service with uvicorn (a `mmvae.commands` plugin).

Settings come from MMVAE_* environment variables; the options here override a few of them.
API keys are read only from the environment (MMVAE_API_KEYS), never from the command line,
where other users could read them in the process list.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.settings import Settings
    from workers.supervisor import EmbeddedWorker


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="start the HTTP service",
        description="Serve models over HTTP (OpenAPI at /docs). Without MMVAE_API_KEYS the "
        "server only listens on loopback unless --allow-open is given.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--preload",
        metavar="SPECS",
        help="comma-separated models to load at start (overrides MMVAE_PRELOAD; default "
        "digits-demo): digits-demo, store:name[@version], hub:org/name@sha",
    )
    p.add_argument("--data-dir", type=Path, help="data directory (overrides MMVAE_DATA_DIR)")
    p.add_argument(
        "--allow-open",
        action="store_true",
        help="listen beyond loopback without API keys (MMVAE_ALLOW_OPEN)",
    )
    p.add_argument(
        "--no-batching", action="store_true", help="run every request alone (MMVAE_BATCHING=off)"
    )
    p.add_argument("--log-level", help="log level (overrides MMVAE_LOG_LEVEL)")
    p.add_argument(
        "--no-worker",
        action="store_true",
        help="embedded mode: do not start a job worker (MMVAE_EMBEDDED_WORKER=false)",
    )
    p.set_defaults(func=serve)


def start_embedded_worker(settings: Settings, no_worker: bool) -> EmbeddedWorker | None:
    """Without Redis, run one supervised job worker next to the API (unless told not to)."""
    jobs = settings.job_settings()
    if no_worker or not settings.jobs_enabled or not jobs.embedded or not jobs.embedded_worker:
        return None
    import os

    from workers.supervisor import EmbeddedWorker

    env = {**os.environ, "MMVAE_DATA_DIR": str(settings.data_dir)}
    if settings.store_dir is not None:
        env["MMVAE_STORE_DIR"] = str(settings.store_dir)
    return EmbeddedWorker(env=env).start()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.app import create_app
    from service.logging import configure_logging
    from service.security import ExposureError, check_exposure
    from service.settings import Settings

    overrides: dict = {}
    if args.preload is not None:
        overrides["preload"] = [s.strip() for s in args.preload.split(",") if s.strip()]
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    if args.allow_open:
        overrides["allow_open"] = True
    if args.no_batching:
        overrides["batching"] = False
    if args.log_level:
        overrides["log_level"] = args.log_level
    settings = Settings(**overrides)
    configure_logging(settings.log_level, settings.log_json)
    try:
        check_exposure(args.host, settings)
    except ExposureError as err:
        print(f"mmvae serve: error: {err}", file=sys.stderr)
        return 2
    worker = start_embedded_worker(settings, getattr(args, "no_worker", False))
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        uvicorn.run(
            create_app(settings),
            host=args.host,
            port=args.port,
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=settings.shutdown_grace_s,
            limit_concurrency=settings.max_connections,
        )
    except Terminated:
        pass  # uvicorn finished its graceful shutdown, then re-raised the signal
    finally:
        signal.signal(signal.SIGTERM, previous)
        if worker is not None:
            worker.stop()
    return 0


class Terminated(Exception):
    """SIGTERM arrived (Docker, systemd): leave the server loop like Ctrl-C, cleanup included."""


def _terminated(signum: int, frame: object) -> None:
    """After its graceful shutdown uvicorn re-raises the signal it caught; with SIGTERM's
    default action that would kill the process before the embedded worker is stopped."""
    raise Terminated
