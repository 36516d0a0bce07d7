"""The Starlette application: Prometheus's API, soulwatch's own, pings, and status.

:func:`create_app` builds it from an :class:`ApiContext`. Besides the modules'
routes it serves ``/-/healthy``, ``/-/ready``, ``POST /-/reload`` (scope
``admin``), ``/health``, ``/metrics``, alert history, receivers, probes, the rule
pack's runbooks at ``/docs/runbooks.md``, the OpenAPI document of soulwatch's
own endpoints at ``/api/v1/openapi.json``, and the web console
(:mod:`soulwatch.api.console`) at ``/``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from soulwatch.api.alertmanager import AlertmanagerApi
from soulwatch.api.auth import Authenticator
from soulwatch.api.console.app import Console
from soulwatch.api.context import ApiContext
from soulwatch.api.federate import FederateApi
from soulwatch.api.guard import RequestGuard
from soulwatch.api.heartbeats import HeartbeatApi
from soulwatch.api.http import ApiError, ErrorType, HttpError, json_response
from soulwatch.api.openapi import openapi_document
from soulwatch.api.prometheus import PrometheusApi
from soulwatch.api.push import PushApi
from soulwatch.api.runbooks import RUNBOOKS_PATH, runbooks_html
from soulwatch.api.silences import SilenceApi
from soulwatch.api.status import StatusApi
from soulwatch.config import AuthConfig, Scope
from soulwatch.exceptions import ConfigError

_log = structlog.get_logger("soulwatch.api")


class _AuthHolder:
    """Rebuilds the authenticator when the context's auth config changes (reload)."""

    def __init__(self, ctx: ApiContext) -> None:
        self._ctx = ctx
        self._config: AuthConfig | None = None
        self._auth: Authenticator | None = None

    def __call__(self) -> Authenticator:
        if self._auth is None or self._config is not self._ctx.auth:
            self._auth = Authenticator(self._ctx.auth)
            self._config = self._ctx.auth
        return self._auth


def create_app(ctx: ApiContext) -> Starlette:
    """The ASGI app serving ``ctx``."""
    auth = _AuthHolder(ctx)
    own = _OwnApi(ctx, auth)
    console = Console(ctx, auth)
    routes = [
        # First: the console owns `/` and its pages win over any API route.
        *console.routes(),
        *PrometheusApi(ctx, auth).routes(),
        *StatusApi(ctx, auth).routes(),
        *FederateApi(ctx, auth).routes(),
        *HeartbeatApi(ctx, auth).routes(),
        *SilenceApi(ctx, auth).routes(),
        *AlertmanagerApi(ctx, auth).routes(),
        *PushApi(ctx, auth).routes(),
        *own.routes(),
        *(ctx.rum.routes() if ctx.rum else ()),
        *(ctx.otlp.routes(auth) if ctx.otlp else ()),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(RequestGuard, api=lambda: ctx.api)],
        exception_handlers={Exception: _internal_error},
    )
    # The server starts it (warm-up) and ends its live streams before stopping.
    app.state.console = console
    return app


def console_of(app: Starlette) -> Console:
    """The console of an app made by :func:`create_app`."""
    console: Console = app.state.console
    return console


async def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug must still answer in the endpoint's error shape, and be logged.
    # A ping URL carries its check's secret (UUID or ping key): log only its shape.
    path = "/ping/..." if request.url.path.startswith("/ping/") else request.url.path
    _log.error("unhandled error", method=request.method, path=path, error=repr(exc))
    if request.url.path.startswith("/api/v1/") and not request.url.path.startswith(
        (
            "/api/v1/heartbeats",
            "/api/v1/push",
            "/api/v1/alerts/history",
            "/api/v1/receivers",
            "/api/v1/probes",
        )
    ):
        return ApiError(ErrorType.INTERNAL, "internal error").response()
    return JSONResponse({"error": "internal error"}, status_code=500)


class _OwnApi:
    def __init__(self, ctx: ApiContext, auth: _AuthHolder) -> None:
        self.ctx = ctx
        self.auth = auth

    def routes(self) -> list[Route]:
        guard = self._guard
        return [
            Route("/-/healthy", self.healthy, methods=["GET", "HEAD"]),
            Route("/-/ready", self.ready, methods=["GET", "HEAD"]),
            Route("/-/reload", guard(self.reload), methods=["POST", "PUT"]),
            Route("/health", self.health, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/api/v1/alerts/history", guard(self.alert_history), methods=["GET"]),
            Route("/api/v1/receivers", guard(self.receivers), methods=["GET"]),
            Route("/api/v1/probes", guard(self.probes), methods=["GET"]),
            Route("/api/v1/openapi.json", self.openapi, methods=["GET"]),
            Route(RUNBOOKS_PATH, self.runbooks, methods=["GET", "HEAD"]),
        ]

    @staticmethod
    def _guard(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                result: Response = await handler(request)
            except HttpError as exc:
                return exc.response()
            return result

        return endpoint

    async def healthy(self, request: Request) -> Response:
        return PlainTextResponse("soulwatch is Healthy.\n")

    async def ready(self, request: Request) -> Response:
        if self.ctx.ready():
            return PlainTextResponse("soulwatch is Ready.\n")
        return PlainTextResponse("Service Unavailable", status_code=503)

    async def health(self, request: Request) -> Response:
        data = self.ctx.health() if self.ctx.health else {"status": "ok"}
        status = 200 if data.get("status") == "ok" else 503
        return JSONResponse(data, status_code=status)

    async def metrics(self, request: Request) -> Response:
        body = self.ctx.metrics() if self.ctx.metrics else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    async def reload(self, request: Request) -> Response:
        self.auth().require(request, Scope.ADMIN)
        if self.ctx.reload is None:
            raise HttpError(503, "reload is not available")
        try:
            await self.ctx.reload()
        except ConfigError as exc:
            # The old configuration keeps running.
            raise HttpError(400, f"config not reloaded: {exc}") from None
        return json_response({"status": "reloaded"})

    async def alert_history(self, request: Request) -> Response:
        self.auth().require_read(request)
        text = request.query_params.get("limit", "100")
        if not text.isdigit() or not 0 < int(text) <= 10_000:
            raise HttpError(400, "limit must be an integer from 1 to 10000", field="limit")
        # The rule store gives each thread its own read-only connection (WAL: it sees
        # the last committed evaluation), so the read runs off the event loop.
        rules = self.ctx.rules
        history = await asyncio.to_thread(rules.alert_history, int(text)) if rules else []
        return json_response({"history": history})

    async def receivers(self, request: Request) -> Response:
        self.auth().require_read(request)
        # The outbox's SQLite reads run off the event loop.
        receivers = self.ctx.receivers
        data = await asyncio.to_thread(receivers.receivers) if receivers else []
        return json_response({"receivers": data})

    async def probes(self, request: Request) -> Response:
        self.auth().require_read(request)
        data = self.ctx.targets.probes() if self.ctx.targets else []
        return json_response({"probes": data})

    async def runbooks(self, request: Request) -> Response:
        # Public like the docs they are: no token, so a link from a page opens.
        return HTMLResponse(runbooks_html())

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document())
