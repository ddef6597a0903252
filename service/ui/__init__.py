"""The web UI: static files (`service/ui/static/`) mounted at `/ui`, with strict security headers.

The page only calls the public HTTP API, with URLs relative to itself, so it works behind a
path prefix. No inline script or style exists, so the Content-Security-Policy allows nothing but
this origin (plus `data:`/`blob:` images: PNG outputs and uploaded pictures).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC_DIR = Path(__file__).resolve().parent / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-cache"),  # revalidate: a new release's files are picked up at once
]


class SecurityHeaders:
    """Adds `SECURITY_HEADERS` to every response of the wrapped app (the UI's files only)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in SECURITY_HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message["headers"] = kept + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def mount_ui(app: FastAPI) -> None:
    """Serve the UI at `/ui/` (index.html for the folder); `/ui` redirects there relatively,
    so the redirect stays under a reverse proxy's path prefix."""

    @app.get("/ui", include_in_schema=False)
    async def ui_redirect() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=307)

    app.mount("/ui", SecurityHeaders(StaticFiles(directory=STATIC_DIR, html=True)), name="ui")
