"""FastJSONRoute: the same answers as FastAPI's own handling, without its dependency solving on
valid requests, and a refusal at startup for endpoints it cannot serve."""

from __future__ import annotations

from typing import Annotated

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from service.errors import ApiError, install_error_handlers
from service.fast_route import FastJSONRoute


class Body(BaseModel):
    values: list[int] = Field(max_length=3)
    scale: float = 1.0


async def check_key(request: Request) -> None:
    if request.headers.get("x-key") != "k":
        raise ApiError(401, "unauthorized", "no key", "x-key")


async def get_item(name: Annotated[str, Path(max_length=5)]) -> str:
    if name == "gone":
        raise ApiError(404, "not_found", f"item {name!r} not found", "name")
    return name.upper()


Item = Annotated[str, Depends(get_item)]


def _app() -> FastAPI:
    """The same endpoint under FastAPI's APIRoute (/std) and under FastJSONRoute (/fast)."""
    app = FastAPI()
    install_error_handlers(app)
    for prefix, route_class in (("/std", fastapi.routing.APIRoute), ("/fast", FastJSONRoute)):
        router = APIRouter(
            prefix=prefix + "/{name}", dependencies=[Depends(check_key)], route_class=route_class
        )

        @router.post("/sum")
        async def total(body: Body, item: Item, request: Request) -> Response:
            value = sum(body.values) * body.scale
            return Response(f"{item}:{value}:{request.method}", media_type="text/plain")

        app.include_router(router)
    return app


KEY = {"x-key": "k"}
JSON = {**KEY, "content-type": "application/json"}
ONE = {"json": {"values": [1]}}
CASES = [
    ("valid", "abc", {"json": {"values": [1, 2], "scale": 2}}, KEY),
    (
        "charset",
        "abc",
        {"content": b'{"values": [4]}'},
        {**JSON, "content-type": "application/json; charset=utf-8"},
    ),
    (
        "vendor json",
        "abc",
        {"content": b'{"values": [4]}'},
        {**KEY, "content-type": "application/x+json"},
    ),
    ("missing key", "abc", ONE, {}),
    ("missing key and bad body", "abc", {"json": {"values": "x"}}, {}),
    ("unknown item", "gone", ONE, KEY),
    ("path too long", "abcdefgh", ONE, KEY),
    ("bad json", "abc", {"content": b'{"values": [1,'}, JSON),
    ("nan", "abc", {"content": b'{"values": [1], "scale": NaN}'}, JSON),
    ("wrong type", "abc", {"json": {"values": ["a"]}}, KEY),
    ("too many", "abc", {"json": {"values": [1, 2, 3, 4]}}, KEY),
    ("extra is ignored", "abc", {"json": {"values": [1], "other": 1}}, KEY),
    ("no content type", "abc", {"content": b'{"values": [1]}'}, KEY),
    ("form", "abc", {"data": {"values": "1"}}, KEY),
    ("empty", "abc", {"content": b""}, JSON),
    ("not an object", "abc", {"json": [1, 2]}, KEY),
]


@pytest.mark.parametrize(("case", "name", "send", "headers"), CASES, ids=[c[0] for c in CASES])
def test_same_answer_as_fastapi(case: str, name: str, send: dict, headers: dict) -> None:
    with TestClient(_app()) as client:
        std = client.post(f"/std/{name}/sum", headers=headers, **send)
        fast = client.post(f"/fast/{name}/sum", headers=headers, **send)
    assert (fast.status_code, fast.content) == (std.status_code, std.content), case
    assert fast.headers.get("content-type") == std.headers.get("content-type")


def test_valid_requests_skip_fastapi_dependency_solving(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    solve = fastapi.routing.solve_dependencies

    async def counting(*args, **kwargs):
        calls.append("solve")
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counting)
    with TestClient(_app()) as client:
        ok = client.post("/fast/abc/sum", headers=KEY, json={"values": [1]})
        assert ok.text == "ABC:1.0:POST" and calls == []
        bad = client.post("/fast/abc/sum", headers=KEY, json={"values": ["a"]})
        assert bad.status_code == 422 and calls == ["solve"]  # errors: FastAPI's own handling
        client.post("/std/abc/sum", headers=KEY, json={"values": [1]})
        assert calls == ["solve", "solve"]


def test_refuses_query_parameters() -> None:
    async def endpoint(body: Body, limit: int = 3) -> Response:
        return Response()

    with pytest.raises(TypeError, match="FastJSONRoute cannot serve"):
        FastJSONRoute("/x", endpoint, methods=["POST"])


async def _nested(item: Item) -> str:
    return item


Nested = Annotated[str, Depends(_nested)]


def test_refuses_dependencies_with_their_own_dependencies() -> None:
    async def endpoint(body: Body, value: Nested) -> Response:
        return Response()

    with pytest.raises(TypeError, match="only take the Request and path parameters"):
        FastJSONRoute("/x/{name}", endpoint, methods=["POST"])


def test_endpoint_must_return_a_response() -> None:
    app = FastAPI()
    router = APIRouter(route_class=FastJSONRoute)

    @router.post("/x")
    async def endpoint(body: Body) -> dict:
        return {"values": body.values}

    app.include_router(router)
    with TestClient(app, raise_server_exceptions=True) as client, pytest.raises(TypeError):
        client.post("/x", json={"values": [1]})
