"""`DirectDispatch`: the inference routes served straight from the middleware stack, without
walking FastAPI's router, for the requests their `FastJSONRoute` accepts.

Why: on a small model, dispatching a request through FastAPI's router (matching every route of
every included router, twice, then its exception, exit-stack and request wrappers) cost about as
much CPU as the forward pass; serving the inference routes directly raised generate's
throughput by a quarter (bench/RESULTS.md). The result is the same as through the router:

- a request is taken only when it matches a route's own path pattern (Starlette's regex and
  converters) with one of its methods; everything else goes on to the app untouched;
- `scope["route"]` and `scope["path_params"]` are set as the router sets them (so metrics and the
  access log name the route);
- the route's `direct` handler runs the same dependencies and body validation; a request it does
  not accept (invalid body, other content type, bad path parameter) goes on to the app, its
  body replayed, so FastAPI answers it exactly as before;
- exceptions are answered by the app's own exception handlers, looked up as Starlette's
  `ExceptionMiddleware` does; those it leaves to `ServerErrorMiddleware` (`Exception`, 500)
  propagate to it here too. (Starlette's default answer to an `HTTPException` is not copied:
  the app must register its own handler for it, as `service.errors` does.)

Put it innermost (`add_middleware` first) so the other middlewares (body limit, CORS,
observability) wrap it as they wrap the router. The routes must be included in the app without
include-level prefixes or dependencies (those are applied by the router, which this bypasses).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from service.asgi import replay_body
from service.fast_route import FastJSONRoute

Handler = Callable[[Request, Exception], Any]


class DirectDispatch:
    """See the module docstring. `owner`: the FastAPI app (its exception handlers and router);
    `routes`: the FastJSONRoutes to serve directly, each ending in a fixed path segment."""

    def __init__(self, app: ASGIApp, owner: FastAPI, routes: Sequence[BaseRoute]) -> None:
        self.app, self.owner = app, owner
        self._table: dict[tuple[str, str], list[FastJSONRoute]] = {}
        for route in routes:
            if not isinstance(route, FastJSONRoute):
                raise TypeError(f"DirectDispatch serves FastJSONRoutes only, not {route!r}")
            last = route.path.rsplit("/", 1)[-1]
            if "{" in last:
                raise TypeError(f"DirectDispatch: {route.path} must end in a fixed segment")
            for method in route.methods or ():
                self._table.setdefault((method, last), []).append(route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = get_route_path(scope)
            for route in self._table.get((scope["method"], path[path.rfind("/") + 1 :]), ()):
                match = route.path_regex.match(path)
                if match is not None:
                    await self._serve(route, match.groupdict(), scope, receive, send)
                    return
        await self.app(scope, receive, send)

    async def _serve(
        self,
        route: FastJSONRoute,
        params: dict[str, str],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        converters = route.param_convertors
        scope["path_params"] = {
            **scope.get("path_params", {}),
            **{key: converters[key].convert(value) for key, value in params.items()},
        }
        scope["route"] = route
        scope.setdefault("router", self.owner.router)
        request = Request(scope, receive)
        try:
            response = await route.direct(request)
        except Exception as exc:
            handler = self._handler(exc)
            if handler is None:
                raise
            response = await _call(handler, request, exc)
            exc.__traceback__ = None  # as Starlette: reused exceptions would grow tracebacks
        if response is None:  # not accepted: the app's router and FastAPI answer it
            await self.app(scope, replay_body(await request.body(), receive), send)
            return
        await response(scope, receive, send)

    def _handler(self, exc: Exception) -> Handler | None:
        """The app's handler for `exc`, as Starlette's ExceptionMiddleware finds it (status code
        first for HTTP exceptions, then the exception's classes in MRO order), leaving what goes
        to ServerErrorMiddleware (500 and `Exception`) to it."""
        handlers = self.owner.exception_handlers
        if isinstance(exc, HTTPException) and exc.status_code != 500:
            by_status = handlers.get(exc.status_code)
            if by_status is not None:
                return by_status
        for cls in type(exc).__mro__:
            if cls is Exception:
                return None
            if cls in handlers:
                return handlers[cls]
        return None


async def _call(handler: Handler, request: Request, exc: Exception) -> Response:
    if inspect.iscoroutinefunction(handler):
        return await handler(request, exc)
    return await run_in_threadpool(handler, request, exc)
