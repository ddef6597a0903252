"""Structured JSON logs, one object per line, carrying the request id of the request being served.

The id comes from the caller's `X-Request-ID` (when short and printable) or is generated, and is
echoed in the response header.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time
import uuid
from datetime import datetime, timezone

REQUEST_ID_HEADER = "X-Request-ID"
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_VALID_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class _RequestIds:
    """Process-unique ids: a random 16-hex-digit prefix (new in every process, forks included)
    and a counter. Cheaper than a uuid4 per request, which reads os.urandom (a system call that
    releases the GIL to the inference thread on a busy server)."""

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.prefix = uuid.uuid4().hex[:16]
        self.counter = itertools.count()

    def next(self) -> str:
        return f"{self.prefix}{next(self.counter):016x}"


_ids = _RequestIds()


def new_request_id(given: str | None) -> str:
    """The caller's id when short and printable, else a new process-unique one."""
    return given if given and _VALID_ID.fullmatch(given) else _ids.next()


class JsonFormatter(logging.Formatter):
    """Log records as JSON: time, level, logger, message, request_id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    """Route the service's and uvicorn's loggers to stderr, as JSON when `as_json`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    )
    for name in ("service", "uvicorn", "uvicorn.error", "core"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True  # the access line is ours, in JSON


_access = logging.getLogger("service.access")


def log_request(method: str, path: str, status: int, started: float) -> None:
    if not _access.isEnabledFor(logging.INFO):
        return
    _access.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        },
    )
