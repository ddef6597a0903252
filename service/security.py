"""API keys, the request body limit, and protected mode.

- Keys travel as `Authorization: Bearer <key>` and are compared with `hmac.compare_digest`
  against every configured key (no early exit), so timing reveals nothing.
- The body limit is enforced on the bytes received, not only on Content-Length, so a chunked
  body is cut off at the limit with 413 too.
- Protected mode: without keys the server runs open only on a loopback address.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.asgi import replay_body
from service.errors import BODY_TIMEOUT_KEY, ApiError, error_body
from service.settings import Settings

log = logging.getLogger("service.security")
bearer = HTTPBearer(auto_error=False, description="an API key from MMVAE_API_KEYS")


def key_matches(given: str, keys: list[str]) -> bool:
    """True when `given` equals one of `keys`; constant time in the key contents."""
    given_bytes = given.encode()
    found = False
    for key in keys:
        found |= hmac.compare_digest(given_bytes, key.encode())
    return found


def check_key(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Raise 401 (no key) or 403 (wrong key) when keys are configured."""
    keys = settings.keys
    if not keys:
        return
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ApiError(
            401,
            "unauthorized",
            "this route needs an API key: send 'Authorization: Bearer <key>'",
            "Authorization",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key_matches(credentials.credentials, keys):
        raise ApiError(403, "forbidden", "the API key is not valid", "Authorization")


async def admin_key(request: Request) -> None:
    """Dependency: a valid key for model load/unload and job routes."""
    check_key(request.app.state.settings, await bearer(request))


async def inference_key(request: Request) -> None:
    """Dependency: a valid key on inference routes when MMVAE_REQUIRE_KEY_FOR_INFERENCE is on."""
    settings: Settings = request.app.state.settings
    if settings.require_key_for_inference:
        check_key(settings, await bearer(request))


KEY_CHECKS = (admin_key, inference_key)


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


class KeyFirstRoute(APIRoute):
    """An `APIRoute` that checks the API key before FastAPI reads and parses the body: a caller
    without a valid key gets its 401/403, never a 422 about a body it may not send (FastAPI
    parses the body before it runs dependencies). The dependency still runs afterwards too."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        checks = list(dict.fromkeys(c for c in _calls(self.dependant) if c in KEY_CHECKS))
        if not checks:
            return handler

        async def checked(request: Request) -> Response:
            for check in checks:
                await check(request)
            return await handler(request)

        return checked


class BodyLimitMiddleware:
    """413 for a body over `max_bytes` (named by `setting`): by Content-Length up front, else
    while it streams in. 408 for a body that stalls: each piece must arrive within `timeout_s`
    of the previous one (uvicorn bounds idle connections, not a request body in progress)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        setting: str = "MMVAE_MAX_BODY_BYTES",
        timeout_s: float = 30.0,
    ) -> None:
        self.app, self.max_bytes, self.setting, self.timeout_s = app, max_bytes, setting, timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(send, 413, "body_too_large", self._too_large())
            return
        receive = self._timed(scope, receive)
        if length is not None and b"transfer-encoding" not in headers:
            # The server reads exactly Content-Length bytes, now known to be within the limit.
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked): read the body now, up to max_bytes, then replay it.
        chunks: list[bytes] = []
        size = 0
        more = scope["method"] not in ("GET", "HEAD", "OPTIONS", "DELETE")
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                if scope.get(BODY_TIMEOUT_KEY):
                    await self._reject(send, 408, "body_timeout", self._stalled())
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send, 413, "body_too_large", self._too_large())
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, replay_body(b"".join(chunks), receive), send)

    def _timed(self, scope: Scope, receive: Receive) -> Receive:
        """`receive`, where a body piece that takes longer than timeout_s reads as a client
        that went away (and the scope says why, for the error handler's 408)."""
        done = False

        async def timed() -> Message:
            nonlocal done
            if done:  # the body is in: what follows is a wait for disconnect, unbounded
                return await receive()
            try:
                async with asyncio.timeout(self.timeout_s):  # a timer, no task per receive
                    message = await receive()
            except TimeoutError:
                scope[BODY_TIMEOUT_KEY] = True
                return {"type": "http.disconnect"}
            done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return timed

    def _too_large(self) -> str:
        return f"request body exceeds {self.max_bytes} bytes (setting {self.setting})"

    def _stalled(self) -> str:
        return (
            f"the request body stalled for over {self.timeout_s:g} s (setting MMVAE_BODY_TIMEOUT_S)"
        )

    @staticmethod
    async def _reject(send: Send, status: int, code: str, message: str) -> None:
        payload = json.dumps(error_body(code, message, "body")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ExposureError(RuntimeError):
    """Refusing to listen beyond loopback without API keys."""


MIN_PUBLIC_KEY_LENGTH = 16  # a guessable key on a public address is no key at all


def check_exposure(host: str, settings: Settings) -> None:
    """Protected mode: with no keys, run open only on loopback (warn); elsewhere refuse unless
    MMVAE_ALLOW_OPEN (or --allow-open) says so. Beyond loopback, every key must have at least
    MIN_PUBLIC_KEY_LENGTH characters."""
    if settings.keys:
        short = [i for i, key in enumerate(settings.keys) if len(key) < MIN_PUBLIC_KEY_LENGTH]
        if short and not is_loopback(host):
            raise ExposureError(
                f"MMVAE_API_KEYS: key{'s' if len(short) > 1 else ''} number "
                f"{', '.join(str(i + 1) for i in short)} {'are' if len(short) > 1 else 'is'} "
                f"shorter than {MIN_PUBLIC_KEY_LENGTH} characters, too short to listen on {host}; "
                'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return
    if is_loopback(host):
        log.warning(
            "no API keys configured (MMVAE_API_KEYS): running open on loopback %s; "
            "every route, model loading included, is unauthenticated",
            host,
        )
        return
    if not settings.allow_open:
        raise ExposureError(
            f"refusing to listen on {host} without API keys: set MMVAE_API_KEYS, listen on "
            "127.0.0.1, or pass --allow-open (MMVAE_ALLOW_OPEN=true) to run open deliberately"
        )
    log.warning(
        "running OPEN on %s without API keys (MMVAE_ALLOW_OPEN): anyone can load models", host
    )
