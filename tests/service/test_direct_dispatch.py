"""DirectDispatch: the same answers as through FastAPI's router, the router skipped for the
requests the route accepts, and a refusal at startup for routes it cannot serve."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from service.direct_dispatch import DirectDispatch
from service.errors import ApiError, install_error_handlers
from service.fast_route import FastJSONRoute
from tests.service.conftest import KEY, auth
from tests.service.test_fast_route import check_key, get_item  # the same dependencies


class Body(BaseModel):
    values: list[int] = Field(max_length=3)
    fail: str | None = None


FAILURES: dict[str, Exception] = {
    "api": ApiError(409, "conflict", "taken", "values"),
    "value": ValueError("values: too odd"),
    "http": HTTPException(418, "teapot", headers={"X-Why": "tea"}),
    "crash": RuntimeError("boom"),
}


def _app(direct: bool) -> tuple[FastAPI, list[str]]:
    """A FastJSONRoute router under /m/{name} (and a plain route beside it); `served` records
    each request that went through the router's route handling."""
    app = FastAPI()
    install_error_handlers(app)
    router = APIRouter(
        prefix="/m/{name}", dependencies=[Depends(check_key)], route_class=FastJSONRoute
    )
    served: list[str] = []

    @router.post("/sum")
    async def total(body: Body, item: Annotated[str, Depends(get_item)], request: Request):
        if body.fail:
            raise FAILURES[body.fail]
        route = request.scope["route"].path
        text = f"{item}:{sum(body.values)}:{route}:{request.path_params}"
        return Response(text, media_type="text/plain")

    @app.get("/m/{name}/sum")
    async def read(name: str) -> dict:
        return {"read": name}

    app.include_router(router)
    if direct:
        app.add_middleware(DirectDispatch, owner=app, routes=router.routes)
    app.add_middleware(_RouteRecorder, served=served)
    return app, served


class _RouteRecorder:
    """Outermost: records the route the request was given to, as the observability middleware
    reads it."""

    def __init__(self, app: ASGIApp, served: list[str]) -> None:
        self.app, self.served = app, served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if scope["type"] == "http":
            self.served.append(getattr(scope.get("route"), "path", "none"))


JSON = {**{"x-key": "k"}, "content-type": "application/json"}
KEYED = {"x-key": "k"}
ONE = {"json": {"values": [1]}}
CASES: list[tuple[str, str, str, dict[str, Any], dict[str, str]]] = [
    ("valid", "POST", "abc", {"json": {"values": [1, 2]}}, KEYED),
    ("percent-encoded name", "POST", "a%20c", ONE, KEYED),
    ("missing key", "POST", "abc", ONE, {}),
    ("unknown item", "POST", "gone", ONE, KEYED),
    ("path too long", "POST", "abcdefgh", ONE, KEYED),
    ("bad json", "POST", "abc", {"content": b'{"values": [1,'}, JSON),
    ("wrong type", "POST", "abc", {"json": {"values": ["a"]}}, KEYED),
    ("no content type", "POST", "abc", {"content": b'{"values": [1]}'}, KEYED),
    ("form", "POST", "abc", {"data": {"values": "1"}}, KEYED),
    ("api error", "POST", "abc", {"json": {"values": [1], "fail": "api"}}, KEYED),
    ("value error", "POST", "abc", {"json": {"values": [1], "fail": "value"}}, KEYED),
    ("http exception", "POST", "abc", {"json": {"values": [1], "fail": "http"}}, KEYED),
    ("crash", "POST", "abc", {"json": {"values": [1], "fail": "crash"}}, KEYED),
    ("other method", "GET", "abc", {}, KEYED),
    ("other method, no route", "DELETE", "abc", {}, KEYED),
    ("trailing slash", "POST", "abc/", ONE, KEYED),
    ("empty name", "POST", "", ONE, KEYED),
]


def _call(client: TestClient, method: str, name: str, send: dict, headers: dict):
    return client.request(method, f"/m/{name}/sum", headers=headers, **send)


@pytest.mark.parametrize(
    ("case", "method", "name", "send", "headers"), CASES, ids=[c[0] for c in CASES]
)
def test_same_answer_as_the_router(
    case: str, method: str, name: str, send: dict, headers: dict
) -> None:
    answers, routes = [], []
    for direct in (False, True):
        app, served = _app(direct)
        with TestClient(app, raise_server_exceptions=False, follow_redirects=False) as client:
            answers.append(_call(client, method, name, send, headers))
        routes.append(served)
    std, fast = answers
    assert (fast.status_code, fast.content) == (std.status_code, std.content), case
    for header in ("content-type", "x-why", "location", "allow"):
        assert fast.headers.get(header) == std.headers.get(header), (case, header)
    assert routes[0] == routes[1], case  # the same route recorded for metrics and logs


def test_same_answer_under_a_root_path() -> None:
    """Behind a proxy prefix (`--root-path`), paths with and without it route alike."""
    answers = []
    for direct in (False, True):
        app, served = _app(direct)
        with TestClient(app, root_path="/api") as client:
            for path in ("/m/abc/sum", "/api/m/abc/sum", "/api/m/abc/other"):
                r = client.post(path, headers=KEYED, json={"values": [1]})
                answers.append((direct, r.status_code, r.text))
        assert served == ["/m/{name}/sum", "/m/{name}/sum", "none"]
    std, fast = answers[:3], answers[3:]
    assert [a[1:] for a in fast] == [a[1:] for a in std] and fast[0][1] == 200


def test_accepted_requests_skip_the_router(monkeypatch: pytest.MonkeyPatch) -> None:
    handled: list[str] = []
    handle = APIRoute.handle

    async def counting(self: APIRoute, scope: Scope, receive: Receive, send: Send) -> None:
        handled.append(self.path)
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", counting)
    app, served = _app(direct=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        ok = client.post("/m/abc/sum", headers=KEYED, json={"values": [2, 3]})
        assert ok.text == "ABC:5:/m/{name}/sum:{'name': 'abc'}" and handled == []
        refused = client.post("/m/abc/sum", headers=KEYED, json={"values": "x"})
        assert refused.status_code == 422 and handled == ["/m/{name}/sum"]  # FastAPI's answer
        client.post("/m/abc/sum", headers=KEYED, json={"values": [1], "fail": "api"})
        assert len(handled) == 1  # an error raised by the endpoint: answered directly
        client.get("/m/abc/sum")
        assert handled == ["/m/{name}/sum", "/m/{name}/sum"]  # another method: the router
    assert served == ["/m/{name}/sum"] * 4


def test_refuses_routes_it_cannot_serve() -> None:
    async def endpoint(body: Body) -> Response:
        return Response()

    app = FastAPI()
    with pytest.raises(TypeError, match="FastJSONRoutes only"):
        DirectDispatch(app, app, [APIRoute("/x", endpoint, methods=["POST"])])
    with pytest.raises(TypeError, match="fixed segment"):
        DirectDispatch(app, app, [FastJSONRoute("/x/{op}", endpoint, methods=["POST"])])


def test_service_answers_alike_with_and_without(make_client) -> None:
    """The service's own inference routes, keys required: the same answers either way."""
    gen = "/v1/models/tiny/generate"
    label = {"inputs": {"label": [3]}}
    json_type = {"content-type": "application/json"}
    requests: list[tuple[str, dict[str, Any], dict[str, str]]] = [
        (gen, {"json": {**label, "targets": ["vec"], "seed": 5}}, auth()),
        (gen, {"json": label}, {}),
        (gen, {"json": label}, auth("wrong")),
        ("/v1/models/nope/generate", {"json": label}, auth()),
        (gen, {"json": {**label, "targets": ["colour"]}}, auth()),
        (gen, {"json": {**label, "n_samples": -1}}, auth()),
        (gen, {"content": b"{"}, {**auth(), **json_type}),
        ("/v1/models/tiny/sample", {"json": {"n": 2, "seed": 1}}, auth()),
        ("/v1/models/tiny/encode", {"json": {"inputs": {"vec": [[1, 2]]}}}, auth()),
    ]
    answers: dict[bool, list[tuple[int, Any]]] = {}
    counted: dict[bool, list[str]] = {}
    for direct in (False, True):
        keys = {"api_keys": [KEY], "require_key_for_inference": True}
        with make_client(direct_dispatch=direct, **keys) as client:
            answers[direct] = [
                (r.status_code, r.json())
                for r in (client.post(path, headers=h, **send) for path, send, h in requests)
            ]
            metrics = client.get("/metrics").text.splitlines()
        counted[direct] = sorted(
            line for line in metrics if line.startswith('mmvae_http_requests_total{method="POST"')
        )
    assert [a[0] for a in answers[True]] == [200, 401, 403, 404, 422, 422, 422, 200, 422]
    assert answers[True] == answers[False]
    # The same route templates and statuses counted: the router picks the routes dispatched.
    assert counted[True] == counted[False] and len(counted[True]) >= 7
