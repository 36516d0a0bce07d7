"""Pure-ASGI middleware: golden-signal metrics and request ids.

Both wrap ``send`` only; neither buffers a body nor re-matches routes. The
route template is read from ``scope["route"]``, which Starlette's and
FastAPI's routers set on the shared scope once they have matched, so the
middleware reads it when the response ends instead of matching every route
again per request (where most of the peers' cost goes).

Latency runs from the request's arrival to the moment the last body chunk has
been handed to the server. BackgroundTasks run after that chunk, so they do not
inflate the latency histogram; the in-progress gauge drops at the same moment.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry

from soulwatch.instrument._types import ASGIApp, Message, Receive, Scope, Send
from soulwatch.instrument.context import _request_id, accept_request_id
from soulwatch.instrument.metrics import UNMATCHED_ROUTE, HttpMetrics, normalise_method

DEFAULT_EXCLUDED_PATHS: Final = frozenset({"/metrics", "/health", "/ready"})
"""Paths not measured by default (the monitor's own probes and scrapes)."""

_REQUEST_ID_HEADER: Final = b"x-request-id"


class _RouteTemplates:
    """Maps the route object the router resolved to its template, cached by identity."""

    def __init__(self) -> None:
        # Starlette routes define __eq__ and so are unhashable: key by id, check identity.
        self._cache: dict[int, tuple[Any, str]] = {}

    def of(self, scope: Scope) -> str:
        route = scope.get("route")
        if route is None:
            return UNMATCHED_ROUTE
        entry = self._cache.get(id(route))
        if entry is not None and entry[0] is route:
            return entry[1]
        template = _template(route)
        self._cache[id(route)] = (route, template)
        return template


def _template(route: Any) -> str:
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return UNMATCHED_ROUTE
    # A Mount that serves a plain sub-app (static files) matched a whole subtree.
    if hasattr(route, "routes") and hasattr(route, "app") and not getattr(route, "routes", None):
        return path.rstrip("/") + "/{path:path}"
    return path or "/"


class MetricsMiddleware:
    """Records ``http_*`` golden signals for every HTTP request of the wrapped app.

    ``metrics`` defaults to the shared instruments of ``registry`` (default:
    prometheus_client's). Paths in ``excluded_paths`` pass through unmeasured.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics | None = None,
        registry: CollectorRegistry | None = None,
        excluded_paths: Iterable[str] = DEFAULT_EXCLUDED_PATHS,
    ) -> None:
        self.app = app
        self.metrics = metrics if metrics is not None else HttpMetrics.for_registry(registry)
        self.excluded_paths = frozenset(excluded_paths)
        self._routes = _RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        metrics = self.metrics
        method = normalise_method(scope["method"])
        started = time.perf_counter()
        metrics.request_started(started)
        status = 0
        done = False

        async def send_measured(message: Message) -> None:
            nonlocal status, done
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
                await send(message)
                return
            await send(message)
            if not done and (
                (kind == "http.response.body" and not message.get("more_body", False))
                or kind == "http.response.pathsend"
            ):
                done = True
                metrics.request_finished(method, self._routes.of(scope), status, started)

        try:
            await self.app(scope, receive, send_measured)
        except Exception as exc:
            route = self._routes.of(scope)
            if not done:
                done = True
                metrics.request_finished(method, route, 500, started)
            metrics.exception_raised(route, exc)
            raise
        finally:
            if not done:
                # The app returned (or was cancelled) without finishing a response:
                # the server answers 500 when nothing was started.
                metrics.request_finished(method, self._routes.of(scope), status or 500, started)


class RequestIdMiddleware:
    """Gives each HTTP request an id, binds it to the log context, returns it in a header.

    An incoming ``X-Request-ID`` is kept when well-formed (8-128 safe
    characters), otherwise replaced. The id is bound for everything that runs
    while serving the request and set on the response, 500s included when this
    middleware wraps the framework's error handler (as :func:`instrument` does).
    It is also put in ``scope["state"]["request_id"]`` (``request.state.request_id``).

    When the app raises before starting a response (an
    ``exception_handler(Exception)`` that logs and re-raises does exactly
    that), this middleware sends the 500 itself, with the id, then re-raises
    so the server still logs the error; the server's own 500 would carry no id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_HEADER:
                raw = value
                break
        request_id = accept_request_id(raw)
        header = (_REQUEST_ID_HEADER, request_id.encode("ascii"))
        state = scope.get("state")
        if state is None:
            scope["state"] = {"request_id": request_id}
        else:
            state["request_id"] = request_id

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                # ASGI header names are lower-case; drop one the app set itself.
                headers = [h for h in message.get("headers", ()) if h[0] != _REQUEST_ID_HEADER]
                headers.append(header)
                message = {**message, "headers": headers}
            await send(message)

        token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not started:
                await _send_plain_500(send_with_id)
            raise
        # Reset only on success: when the app raises, the server logs the error
        # after we return, in the same per-request task, and that line must
        # still carry the id. The next request sets its own id.
        _request_id.reset(token)


async def _send_plain_500(send: Send) -> None:
    """The response a server sends for an unhandled error (Starlette's words)."""
    body = b"Internal Server Error"
    await send(
        {
            "type": "http.response.start",
            "status": 500,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode("ascii")),
                # The error is re-raised and the server then drops the connection:
                # say so, or a keep-alive client reuses it and gets a reset.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
