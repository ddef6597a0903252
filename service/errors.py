"""Errors as JSON `{"error": {"code", "message", "field"}}`: 4xx for the caller's mistakes.

Routes raise `ApiError` (or a subclass); `ValueError`s from core become 422 with their message
(and their `field` attribute, when they carry one: fields travel as data, never parsed out of
text); code that decodes the caller's bytes runs inside `decoding(field)`, which turns every
decoding error (base64, PNG, numbers, zip, JSON) into a 422 naming the field; a broker that
cannot be reached is a 503 with Retry-After; anything else unexpected is a bare 500, logged.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from workers.redaction import redact

log = logging.getLogger("service.errors")
BODY_TIMEOUT_KEY = "mmvae.body_timed_out"  # in the scope when the body middleware gave up waiting
CLIENT_CLOSED = 499  # nginx's status for a client that went away before the answer


class ApiError(Exception):
    """An error answered to the caller: HTTP `status`, a stable `code`, the `field` at fault."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def invalid(field: str, message: str) -> ApiError:
    """422: a value the caller sent is wrong; the message names the field and the rule."""
    return ApiError(422, "invalid_input", f"{field}: {message}", field)


def over_limit(field: str, value: int, limit: int, setting: str) -> ApiError:
    """422: a value over a configured limit; names the field, the limit and the setting."""
    return ApiError(
        422,
        "limit_exceeded",
        f"{field}: {value} exceeds the limit of {limit} (setting {setting})",
        field,
    )


# What decoding a caller's bytes may raise: the caller's mistake, never the server's.
DECODING_ERRORS: tuple[type[BaseException], ...] = (
    binascii.Error,
    UnicodeDecodeError,
    json.JSONDecodeError,
    OverflowError,
    zipfile.BadZipFile,
    zlib.error,
    EOFError,
    struct.error,
    SyntaxError,  # Pillow's error for some malformed chunks
    OSError,  # Pillow's "cannot identify image" and truncated files
    ValueError,
)


@contextlib.contextmanager
def decoding(field: str | Callable[[], str], what: str = "value") -> Iterator[None]:
    """Run code that decodes what the caller sent as `field` (`what` it should be): decoding
    errors become a 422 naming both; an `ApiError` raised inside passes through unchanged.
    `field` may be a function, asked only on error (e.g. the index a loop had reached)."""
    try:
        yield
    except ApiError:
        raise
    except DECODING_ERRORS as err:
        name = field() if callable(field) else field
        raise invalid(name, f"not a readable {what} ({type(err).__name__}: {err})") from None


def not_found(what: str, name: str, field: str | None = None) -> ApiError:
    return ApiError(404, "not_found", f"{what} {name!r} not found", field)


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "field": field}}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field), status_code=status, headers=headers)


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    """`("body", "inputs", "image", 0)` → `inputs.image[0]`."""
    parts: list[str] = []
    for item in loc:
        if item in ("body", "query", "path", "header") and not parts:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "body"


def _redacted(request: Request, message: str) -> str:
    """`message` without the server's data, store and temporary folders (workers/redaction.py):
    core's errors may name files; callers address models and data by name, never by path."""
    settings = getattr(request.app.state, "settings", None)
    if settings is None:
        return message
    return redact(message, settings.data_dir, settings.resolved_store_dir)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    message = _redacted(request, exc.message)
    return error_response(exc.status, exc.code, message, exc.field, exc.headers)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    loc = first.get("loc", ())
    if first.get("type") == "json_invalid":  # loc holds the character position, not a field
        field = "body"
        at = f" at character {loc[-1]}" if loc and isinstance(loc[-1], int) else ""
        reason = (first.get("ctx") or {}).get("error", "")
        message = f"body: invalid JSON{at}" + (f" ({reason})" if reason else "")
    else:
        field = _loc(loc)
        message = f"{field}: {first.get('msg', 'invalid')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return error_response(422, "invalid_request", message, field)


def _allowed_methods(request: Request) -> str | None:
    """Every method some route serves at this path (Starlette's 405 names only the first route
    that matched the path, e.g. GET where GET and POST are two routes); `app.state.routes`
    holds (path pattern, methods) of every route, from `create_app`."""
    path = request.scope.get("path", "")
    routes = getattr(request.app.state, "routes", ())
    methods = {m for pattern, allowed in routes if pattern.match(path) for m in allowed}
    return ", ".join(sorted(methods)) or None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400:  # an unparseable body: a caller mistake like any other, so 422
        return error_response(422, "invalid_request", f"body: {exc.detail}", "body")
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
        exc.status_code, "http_error"
    )
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(exc.status_code, code, str(exc.detail), None, headers)


async def _value_error(request: Request, exc: Exception) -> JSONResponse:
    message = _redacted(request, str(exc) or type(exc).__name__)
    return error_response(422, "invalid_input", message, getattr(exc, "field", None))


async def _broker_down(_: Request, exc: Exception) -> JSONResponse:
    """The job broker or store (Redis) cannot be reached: retry later, nothing was queued."""
    log.warning("job broker unreachable: %s", exc)
    return error_response(
        503,
        "broker_unavailable",
        "the job broker cannot be reached; nothing was queued or changed, retry shortly",
        None,
        {"Retry-After": "5"},
    )


def broker_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of an unreachable Redis or Celery broker (empty when they are not installed)."""
    found: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import redis.exceptions

        found += [redis.exceptions.ConnectionError, redis.exceptions.TimeoutError]
    with contextlib.suppress(ImportError):
        import kombu.exceptions

        found.append(kombu.exceptions.OperationalError)
    return tuple(found)


async def _client_disconnect(request: Request, exc: Exception) -> JSONResponse:
    """The body never arrived whole: the client hung up (499, nothing to log) or stalled past
    MMVAE_BODY_TIMEOUT_S (408)."""
    if request.scope.get(BODY_TIMEOUT_KEY):
        return error_response(
            408, "body_timeout", "the request body stalled (setting MMVAE_BODY_TIMEOUT_S)", "body"
        )
    return error_response(CLIENT_CLOSED, "client_closed", "the client closed the connection")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnect)
    for error in broker_errors():
        app.add_exception_handler(error, _broker_down)
    app.add_exception_handler(Exception, _unexpected)
