"""`JobContext`: what a job body (train, augment, evaluate) is given by the task running it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.jobs import JobStore
from workers.settings import WorkerSettings


@dataclass
class JobContext:
    """What a job body gets: settings, the store, its record, folder and cancel event."""

    settings: WorkerSettings
    store: JobStore
    job: dict[str, Any]
    folder: Path
    cancel: threading.Event
    attempt: dict[str, Any]
