"""`FastJSONRoute`: an `APIRoute` that serves valid JSON requests without FastAPI's per-request
dependency solving, and hands every other request to FastAPI's own handler.

Why: on a small model, FastAPI's generic request handling (dependency graph, parameter
collection, content negotiation) cost more CPU than the forward pass; under load it capped the
inference routes at a third of what the HTTP stack itself serves (bench/RESULTS.md). This route
does the same steps for the parameter kinds the inference routes use, with a plan computed once:

- dependencies are called in FastAPI's order with the same arguments (the `Request` and their
  path parameters, validated by the same pydantic field definitions);
- the body is parsed and validated by the same pydantic model, in one step from the raw bytes
  (`validate_json`; FastAPI runs `json.loads`, then validates the objects: for a body that both
  accept the result is the same, and any body `validate_json` refuses goes to FastAPI).

Anything it does not handle itself — a body that is not `application/json`, invalid JSON, a body
or path parameter that fails validation — goes to FastAPI's handler, so every error response is
FastAPI's (with this service's error handlers) by construction. Errors raised by dependencies
(401, 403, 404) propagate exactly as they do under FastAPI. The OpenAPI schema is unchanged: it
is generated from the endpoint's signature as for any route. Endpoints must return a `Response`.
A request that falls back has its dependencies called twice (here, then by FastAPI), so they must
be free of side effects: true of the key check and model lookup the inference routes use.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError


class _Standard(Exception):
    """This request goes to FastAPI's handler."""


@dataclass(frozen=True)
class _Dependency:
    call: Callable[..., Awaitable[Any]]
    result_name: str | None  # the endpoint parameter it fills (None: a router-level dependency)
    request_name: str | None
    path_params: tuple[tuple[str, str, TypeAdapter], ...]  # (argument, path key, validator)


def _unsupported(dependant: Dependant, what: str) -> TypeError:
    return TypeError(f"FastJSONRoute cannot serve {dependant.call!r}: {what}")


def _path_params(dependant: Dependant) -> tuple[tuple[str, str, TypeAdapter], ...]:
    return tuple(
        (f.name, f.alias, TypeAdapter(Annotated[f.field_info.annotation, f.field_info]))
        for f in dependant.path_params
    )


def _plan_dependency(sub: Dependant) -> _Dependency:
    """A dependency this route can call itself: an `async def` taking the Request and/or path
    parameters, with no dependencies of its own."""
    if sub.dependencies or sub.query_params or sub.header_params or sub.cookie_params:
        raise _unsupported(sub, "dependencies may only take the Request and path parameters")
    if sub.body_params or sub.call is None or not inspect.iscoroutinefunction(sub.call):
        raise _unsupported(sub, "dependencies must be plain `async def` functions without a body")
    return _Dependency(sub.call, sub.name, sub.request_param_name, _path_params(sub))


def _json_content_type(value: str | None) -> bool:
    if value is None:
        return False
    media = value.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class FastJSONRoute(APIRoute):
    """See the module docstring. Use as `APIRouter(route_class=FastJSONRoute)`. `direct(request)`
    serves a request this route accepts and returns None for one FastAPI must handle; the route's
    handler is `direct`, then FastAPI's handler when it returned None."""

    direct: Callable[[Request], Awaitable[Response | None]]

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        standard = super().get_route_handler()
        dependant = self.dependant
        if dependant.query_params or dependant.header_params or dependant.cookie_params:
            raise _unsupported(dependant, "only path parameters, dependencies and a JSON body")
        if dependant.path_params or dependant.background_tasks_param_name:
            raise _unsupported(dependant, "path parameters belong in dependencies here")
        if len(dependant.body_params) > 1 or getattr(self, "_embed_body_fields", False):
            raise _unsupported(dependant, "at most one body model, not embedded")
        dependencies = [_plan_dependency(sub) for sub in dependant.dependencies]
        body_name = body_adapter = None
        if dependant.body_params:
            field = dependant.body_params[0]
            body_name, body_adapter = field.name, TypeAdapter(field.field_info.annotation)
        request_name = dependant.request_param_name
        endpoint = dependant.call
        assert endpoint is not None

        async def arguments(request: Request) -> dict[str, Any]:
            kwargs: dict[str, Any] = {}
            for dep in dependencies:
                args: dict[str, Any] = {}
                if dep.request_name:
                    args[dep.request_name] = request
                for name, key, adapter in dep.path_params:
                    try:
                        args[name] = adapter.validate_python(request.path_params[key])
                    except (KeyError, ValidationError):
                        raise _Standard from None
                value = await dep.call(**args)
                if dep.result_name:
                    kwargs[dep.result_name] = value
            if body_adapter is not None:
                if not _json_content_type(request.headers.get("content-type")):
                    raise _Standard
                try:
                    kwargs[body_name] = body_adapter.validate_json(await request.body())
                except ValidationError:  # invalid JSON included: FastAPI words those errors
                    raise _Standard from None
            if request_name:
                kwargs[request_name] = request
            return kwargs

        async def direct(request: Request) -> Response | None:
            try:
                kwargs = await arguments(request)
            except _Standard:
                return None
            response = await endpoint(**kwargs)
            if not isinstance(response, Response):
                raise TypeError(f"{endpoint!r} must return a Response under FastJSONRoute")
            return response

        async def handler(request: Request) -> Response:
            response = await direct(request)
            return await standard(request) if response is None else response

        self.direct = direct
        handler.standard = standard  # type: ignore[attr-defined]
        return handler
