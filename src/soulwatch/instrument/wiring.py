"""``instrument(app, service=...)``: every piece of the SDK on one app, in one line.

The stack, outermost first::

    RequestIdMiddleware      id per request, bound to logs, set on every response
      _Root                  /metrics, /health, /ready; lifespan starts the exporters
        MetricsMiddleware    http_* golden signals
          <the app's own middleware stack, ServerErrorMiddleware included>

On a Starlette/FastAPI app the stack wraps the app's whole middleware stack
(including the error handler that turns exceptions into 500s), so a 500 also
carries the request id and is measured as the client saw it.

The app's own endpoints win: a path the app already routes for GET (say its
own ``/health``, which fails with its store) is left to the app, never
shadowed by the SDK's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument._types import ASGIApp, Message, Receive, Scope, Send
from soulwatch.instrument.asgi import MetricsMiddleware, RequestIdMiddleware
from soulwatch.instrument.exporters import ExportLoop, exporter_from_url
from soulwatch.instrument.exposition import MetricsEndpoint
from soulwatch.instrument.health import Check, HealthChecks
from soulwatch.instrument.logs import LogFormat, configure_logging, resolve_format
from soulwatch.instrument.metrics import DEFAULT_BUCKETS, HttpMetrics
from soulwatch.instrument.multiprocess import ENV_VAR, WorkerProcessMetrics

_MARK = "_soulwatch_instrumentation"


@dataclass(frozen=True)
class InstrumentConfig:
    """Every setting of :func:`instrument`; :meth:`from_env` fills it from the environment.

    See docs/sdk.md for each setting and its environment variable.
    """

    version: str = "unknown"
    metrics_path: str = "/metrics"
    health_path: str = "/health"
    ready_path: str = "/ready"
    excluded_paths: frozenset[str] | None = None
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    request_id: bool = True
    configure_logs: bool = True
    log_format: LogFormat | None = None
    log_level: str | None = None
    exporters: tuple[str, ...] = ()
    export_interval: float = 10.0
    multiprocess_dir: Path | None = None
    worker_metrics_interval: float = 5.0
    extra_endpoints: Mapping[str, ASGIApp] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> InstrumentConfig:
        """The config from ``SOULWATCH_*`` and ``PROMETHEUS_MULTIPROC_DIR``, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("SOULWATCH_VERSION"):
            values["version"] = env["SOULWATCH_VERSION"]
        if env.get("SOULWATCH_LOG_FORMAT"):
            values["log_format"] = resolve_format(None, dict(env))
        if env.get("SOULWATCH_LOG_LEVEL"):
            values["log_level"] = env["SOULWATCH_LOG_LEVEL"]
        if env.get("SOULWATCH_EXPORTERS"):
            values["exporters"] = tuple(
                u.strip() for u in env["SOULWATCH_EXPORTERS"].split(",") if u.strip()
            )
        if env.get("SOULWATCH_EXPORT_INTERVAL"):
            raw = env["SOULWATCH_EXPORT_INTERVAL"]
            try:
                values["export_interval"] = float(raw)
            except ValueError:
                raise ValueError(
                    f"SOULWATCH_EXPORT_INTERVAL must be seconds, got {raw!r}"
                ) from None
        if env.get(ENV_VAR):
            values["multiprocess_dir"] = Path(env[ENV_VAR])
        values.update(overrides)
        return cls(**values)


class Instrumentation:
    """The pieces :func:`instrument` wired, for adding checks or wrapping another ASGI app."""

    def __init__(
        self,
        service: str,
        *,
        config: InstrumentConfig | None = None,
        registry: CollectorRegistry | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.service = service
        self.config = config or InstrumentConfig.from_env()
        self.registry = REGISTRY if registry is None else registry
        self.clock = clock or SystemClock()
        cfg = self.config
        if cfg.multiprocess_dir is not None and not cfg.multiprocess_dir.is_dir():
            raise ValueError(f"{ENV_VAR}={cfg.multiprocess_dir} is not a directory")
        self.metrics = HttpMetrics.for_registry(self.registry, cfg.buckets)
        self.health = HealthChecks(
            service=service, version=cfg.version, clock=self.clock, registry=self.registry
        )
        self.worker_metrics: WorkerProcessMetrics | None = None
        if cfg.multiprocess_dir is not None:
            self.worker_metrics = WorkerProcessMetrics.for_registry(self.registry)
            self.worker_metrics.interval = cfg.worker_metrics_interval
        hooks: list[Callable[[], None]] = [self.metrics.flush_busy]
        if self.worker_metrics is not None:
            hooks.append(self.worker_metrics.refresh)
        self.metrics_endpoint = MetricsEndpoint(
            self.registry, multiprocess_dir=cfg.multiprocess_dir, before_scrape=hooks
        )
        #: SDK paths left to the app because it routes them itself (set by :meth:`wrap`).
        self.yielded_paths: frozenset[str] = frozenset()
        self.export_loop = (
            ExportLoop(
                [exporter_from_url(u, service=service) for u in cfg.exporters],
                registry=self.registry,
                interval=cfg.export_interval,
                clock=self.clock,
            )
            if cfg.exporters
            else None
        )

    def add_check(self, name: str, check: Check, **options: Any) -> None:
        """Register a readiness check (see :meth:`HealthChecks.add`)."""
        self.health.add(name, check, **options)

    @property
    def endpoints(self) -> dict[str, ASGIApp]:
        """The paths the SDK serves itself."""
        cfg = self.config
        return {
            cfg.metrics_path: self.metrics_endpoint,
            cfg.health_path: self.health.health_app,
            cfg.ready_path: self.health.ready_app,
            **cfg.extra_endpoints,
        }

    def wrap(self, app: ASGIApp, *, app_paths: frozenset[str] = frozenset()) -> ASGIApp:
        """``app`` inside the SDK's stack (for any ASGI app; :func:`instrument` uses it).

        ``app_paths`` are paths the app serves itself: the SDK does not answer
        them, so an app's own ``/health`` keeps its meaning.
        """
        cfg = self.config
        excluded = cfg.excluded_paths
        if excluded is None:
            excluded = frozenset(self.endpoints)
        measured = MetricsMiddleware(app, metrics=self.metrics, excluded_paths=excluded)
        self.yielded_paths = frozenset(p for p in self.endpoints if p in app_paths)
        root = _Root(measured, self)
        return RequestIdMiddleware(root) if cfg.request_id else root

    def background_tasks(self) -> list[Callable[[], Any]]:
        """The coroutines the lifespan runs while the app serves."""
        tasks: list[Callable[[], Any]] = []
        if self.export_loop is not None:
            tasks.append(self.export_loop.run)
        if self.worker_metrics is not None:
            tasks.append(self._refresh_worker_metrics)
        return tasks

    async def _refresh_worker_metrics(self) -> None:
        assert self.worker_metrics is not None
        while True:
            self.worker_metrics.refresh(force=True)
            await self.clock.sleep(self.worker_metrics.interval)


class _Root:
    """Serves the SDK's endpoints and runs its background tasks during the lifespan."""

    def __init__(self, app: ASGIApp, instrumentation: Instrumentation) -> None:
        self.app = app
        self.instrumentation = instrumentation
        self.endpoints = {
            path: endpoint
            for path, endpoint in instrumentation.endpoints.items()
            if path not in instrumentation.yielded_paths
        }
        self._tasks: list[asyncio.Task[Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None and scope["method"] in ("GET", "HEAD"):
                await endpoint(scope, receive, send)
                return
        elif kind == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
            return
        await self.app(scope, receive, send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self._tasks = [
                    asyncio.create_task(factory())
                    for factory in self.instrumentation.background_tasks()
                ]
            elif message["type"] == "lifespan.shutdown":
                await self.stop()
            return message

        return wrapped

    async def stop(self) -> None:
        """Cancel the background tasks and wait for them (the exporters flush once)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def instrument(
    app: Any,
    service: str,
    *,
    config: InstrumentConfig | None = None,
    registry: CollectorRegistry | None = None,
    clock: Clock | None = None,
    checks: Mapping[str, Check] | None = None,
    **settings: Any,
) -> Instrumentation:
    """Add metrics, ``/metrics``, ``/health``, ``/ready``, request ids and JSON logs to ``app``.

    Of those paths, any the app already routes for GET stays the app's.

    ``app`` is a Starlette or FastAPI application that has not served yet.
    ``settings`` override fields of :class:`InstrumentConfig` (which is
    otherwise read from the environment); ``checks`` are readiness checks.
    Instrumenting the same app again returns the first :class:`Instrumentation`.
    """
    existing = getattr(app, _MARK, None)
    if isinstance(existing, Instrumentation):
        return existing
    build: Callable[[], ASGIApp] | None = getattr(app, "build_middleware_stack", None)
    if build is None:
        raise TypeError(
            f"instrument() needs a Starlette/FastAPI app, got {type(app).__name__}; "
            "wrap other ASGI apps with Instrumentation(service).wrap(app)"
        )
    if getattr(app, "middleware_stack", None) is not None:
        raise RuntimeError("instrument() must be called before the app serves its first request")
    cfg = config or InstrumentConfig.from_env(**settings)
    if config is not None and settings:
        raise TypeError("pass either config= or individual settings, not both")
    if cfg.configure_logs:
        configure_logging(format=cfg.log_format, level=cfg.log_level, service=service)
    instrumentation = Instrumentation(service, config=cfg, registry=registry, clock=clock)
    for name, check in (checks or {}).items():
        instrumentation.add_check(name, check)

    def build_instrumented() -> ASGIApp:
        # Routes are read when the stack is built (first request or lifespan),
        # so routes declared after instrument() are seen too.
        return instrumentation.wrap(build(), app_paths=_get_routes(app))

    app.build_middleware_stack = build_instrumented
    setattr(app, _MARK, instrumentation)
    return instrumentation


def _get_routes(app: Any) -> frozenset[str]:
    """The literal paths the app's router serves for GET (parametrised routes and mounts aside)."""
    paths: set[str] = set()
    for route in getattr(app, "routes", ()):
        path, methods = getattr(route, "path", None), getattr(route, "methods", None)
        # A Mount or a websocket route has no methods; "/{name}" is not a route *of* /health.
        if isinstance(path, str) and methods and "GET" in methods and "{" not in path:
            paths.add(path)
    return frozenset(paths)
