"""`mmvae worker`: start a Celery worker for jobs (a `mmvae.commands` plugin).

Settings come from MMVAE_* variables (MMVAE_REDIS_URL or REDIS_URL for Redis; none for the
embedded filesystem broker under MMVAE_DATA_DIR). Defaults suit one GPU: both queues, prefork
with one process, so CUDA is only ever initialised in the pool child.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "worker",
        help="start a job worker (training, augmentation, evaluation)",
        description="Run a Celery worker for mmvae jobs. Embedded mode (no MMVAE_REDIS_URL) "
        "uses a filesystem broker under the data directory; Redis mode uses MMVAE_REDIS_URL.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--queues", default="gpu,cpu", help="queues to consume (default gpu,cpu)")
    p.add_argument("--concurrency", type=int, default=1, help="pool processes (default 1)")
    p.add_argument(
        "--pool",
        choices=["prefork", "solo", "threads"],
        default="prefork",
        help="prefork (default; time limits work), solo or threads",
    )
    p.add_argument("--loglevel", default="info", help="log level (default info)")
    p.add_argument("--data-dir", type=Path, help="data directory (overrides MMVAE_DATA_DIR)")
    p.add_argument("--hostname", help="worker name (default mmvae-<pid>@<host>)")


def worker_argv(args: argparse.Namespace, embedded: bool) -> list[str]:
    """The `celery worker` command line for these options."""
    argv = [
        "worker",
        f"--queues={args.queues}",
        f"--concurrency={args.concurrency}",
        f"--pool={args.pool}",
        f"--loglevel={args.loglevel}",
        f"--hostname={args.hostname or f'mmvae-{os.getpid()}@%h'}",
    ]
    if embedded:  # the filesystem transport has no fanout exchange for these
        argv += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return argv


def run(args: argparse.Namespace) -> int:
    if args.data_dir is not None:
        os.environ["MMVAE_DATA_DIR"] = str(args.data_dir)  # pool children read it too
    if args.concurrency < 1:
        raise ValueError("--concurrency: must be at least 1")
    from workers.celery_app import make_celery
    from workers.settings import WorkerSettings
    from workers.supervisor import watch_parent

    settings = WorkerSettings()
    app = make_celery(settings)
    app.set_current()
    app.set_default()
    watch_parent()
    app.worker_main(argv=worker_argv(args, settings.embedded))
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m workers [options]`: the same as `mmvae worker`."""
    parser = argparse.ArgumentParser(prog="python -m workers", description="mmvae job worker")
    add_arguments(parser)
    return run(parser.parse_args(argv))
