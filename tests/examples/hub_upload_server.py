"""A Hub-compatible upload server on loopback: a real HTTP server (Starlette under uvicorn, in a
thread) that answers the calls `huggingface_hub` makes to push a folder as one commit (create
repo, branch, preupload, commit) as the Hub does, and keeps what it was sent.

Point a process at it with `HF_ENDPOINT=<server.endpoint>`; read the commits back with
`server.commits`. Files come back as the client sent them (inline, base64: the server asks for
"regular" uploads, so no LFS or Xet storage is involved).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.core.hub_server import commit_payload, free_port


@dataclass
class Commit:
    """One commit as received: where it went, its header, its files and the caller's token."""

    repo_id: str
    revision: str
    summary: str
    files: dict[str, bytes]
    authorization: str | None
    sha: str


@dataclass
class UploadHub:
    """What the server received: every call (method, path) and every commit."""

    endpoint: str = ""
    calls: list[tuple[str, str]] = field(default_factory=list)
    commits: list[Commit] = field(default_factory=list)
    repos: list[dict] = field(default_factory=list)

    def unexpected(self) -> list[tuple[str, str]]:
        """Calls this server does not implement (it answered them 404)."""
        known = ("/api/repos/create", "/api/validate-yaml", "/branch/", "/preupload/", "/commit/")
        return [(m, p) for m, p in self.calls if not any(k in p for k in known)]


def _app(hub: UploadHub) -> Starlette:
    """The routes of the Hub's write API that a one-commit push uses."""

    async def create_repo(request: Request) -> JSONResponse:
        spec = await request.json()
        hub.repos.append(spec)
        repo_id = f"{spec.get('organization') or 'user'}/{spec['name']}"
        return JSONResponse({"url": f"{hub.endpoint}/{repo_id}"})

    async def validate_yaml(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"errors": [], "warnings": []})

    async def branch(request: Request) -> JSONResponse:
        return JSONResponse({})

    async def preupload(request: Request) -> JSONResponse:
        files = (await request.json())["files"]
        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
        return JSONResponse({"files": modes})

    async def commit(request: Request) -> JSONResponse:
        body = await request.body()
        header, files = commit_payload(body)
        sha = hashlib.sha1(body).hexdigest()
        p = request.path_params
        repo_id = f"{p['org']}/{p['name']}"
        hub.commits.append(
            Commit(
                repo_id=repo_id,
                revision=p["revision"],
                summary=header.get("summary", ""),
                files=files,
                authorization=request.headers.get("authorization"),
                sha=sha,
            )
        )
        url = f"{hub.endpoint}/{repo_id}/commit/{sha}"
        return JSONResponse({"commitUrl": url, "commitOid": sha})

    async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
        hub.calls.append((request.method, request.url.path))
        return await call_next(request)

    repo = "/api/models/{org}/{name}"
    return Starlette(
        routes=[
            Route("/api/repos/create", create_repo, methods=["POST"]),
            Route("/api/validate-yaml", validate_yaml, methods=["POST"]),
            Route(repo + "/branch/{branch:path}", branch, methods=["POST"]),
            Route(repo + "/preupload/{revision:path}", preupload, methods=["POST"]),
            Route(repo + "/commit/{revision:path}", commit, methods=["POST"]),
        ],
        middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)],
    )


@contextmanager
def upload_hub() -> Iterator[UploadHub]:
    """The server on a free loopback port for the duration of the block."""
    hub = UploadHub()
    port = free_port()
    hub.endpoint = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(_app(hub), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the upload hub did not start"
        time.sleep(0.05)
    try:
        yield hub
    finally:
        server.should_exit = True
        thread.join(timeout=10)
