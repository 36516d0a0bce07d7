"""Liveness (``/health``) and readiness (``/ready``) with registered dependency checks.

``/health`` answers 200 while the process serves, with service, version and
uptime. ``/ready`` runs every registered check concurrently, each cut at its
own timeout and cached briefly (a burst of probes does not hammer Redis); it
answers 200 when every critical check passes and 503 with a JSON body naming
each failing check and its error otherwise. Results are also exported as
``health_check_status{check}`` (1 ok, 0 failing) and
``health_check_duration_seconds{check}``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument._extras import require
from soulwatch.instrument._state import shared
from soulwatch.instrument._types import Receive, Scope, Send
from soulwatch.instrument.redact import redact_text

Check = Callable[[], Any]
"""A check: a sync or async callable; it fails by raising or returning ``False``."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check run."""

    name: str
    ok: bool
    critical: bool
    duration_seconds: float
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used in the ``/ready`` body."""
        return {
            "ok": self.ok,
            "critical": self.critical,
            "duration_seconds": round(self.duration_seconds, 6),
            "error": self.error,
        }


@dataclass
class _Registered:
    check: Check
    timeout: float
    critical: bool
    cache_seconds: float
    last: CheckResult | None = None
    last_at: float = 0.0


class _HealthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.status = Gauge(
            "health_check_status",
            "1 when the readiness check passed on its last run, 0 when it failed.",
            ("check",),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.duration = Gauge(
            "health_check_duration_seconds",
            "Duration of the readiness check's last run.",
            ("check",),
            registry=registry,
            multiprocess_mode="livemostrecent",
        )


class HealthChecks:
    """The checks behind ``/ready`` and the facts behind ``/health``."""

    def __init__(
        self,
        *,
        service: str,
        version: str = "unknown",
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.service = service
        self.version = version
        self.clock = clock or SystemClock()
        self._started = self.clock.monotonic()
        self._checks: dict[str, _Registered] = {}
        registry = REGISTRY if registry is None else registry
        self._metrics = shared(registry, "health", lambda: _HealthMetrics(registry))

    def add(
        self,
        name: str,
        check: Check,
        *,
        timeout: float = 2.0,
        critical: bool = True,
        cache_seconds: float = 1.0,
    ) -> None:
        """Register ``check`` under ``name`` (replacing one of the same name)."""
        if timeout <= 0:
            raise ValueError(f"check {name!r}: timeout must be positive, got {timeout}")
        self._checks[name] = _Registered(check, timeout, critical, cache_seconds)

    @property
    def names(self) -> list[str]:
        """The registered check names."""
        return list(self._checks)

    def liveness(self) -> dict[str, Any]:
        """The ``/health`` body."""
        return {
            "status": "ok",
            "service": self.service,
            "version": self.version,
            "uptime_seconds": round(self.clock.monotonic() - self._started, 3),
        }

    async def run(self) -> list[CheckResult]:
        """Run every check concurrently (cached results are reused while fresh)."""
        names = list(self._checks)
        results = await asyncio.gather(*(self._run_one(n, self._checks[n]) for n in names))
        return list(results)

    async def readiness(self) -> tuple[bool, dict[str, Any]]:
        """Whether every critical check passes, and the ``/ready`` body."""
        results = await self.run()
        ready = all(r.ok for r in results if r.critical)
        failing = {r.name: r.error for r in results if not r.ok}
        body = {
            "status": "ok" if ready else "fail",
            "service": self.service,
            "failing": failing,
            "checks": {r.name: r.as_dict() for r in results},
        }
        return ready, body

    async def _run_one(self, name: str, reg: _Registered) -> CheckResult:
        now = self.clock.monotonic()
        if reg.last is not None and now - reg.last_at < reg.cache_seconds:
            return reg.last
        started = self.clock.monotonic()
        error: str | None = None
        try:
            outcome = await asyncio.wait_for(_call(reg.check), timeout=reg.timeout)
            if outcome is False:
                error = "check returned False"
        except TimeoutError:
            error = f"timed out after {reg.timeout:g}s"
        except Exception as exc:  # a failing dependency is data here, not a crash
            error = redact_text(f"{type(exc).__name__}: {exc}")
        duration = self.clock.monotonic() - started
        result = CheckResult(name, error is None, reg.critical, duration, error)
        reg.last, reg.last_at = result, self.clock.monotonic()
        self._metrics.status.labels(name).set(1.0 if result.ok else 0.0)
        self._metrics.duration.labels(name).set(duration)
        return result

    async def health_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI app for ``/health``."""
        await _send_json(send, 200, self.liveness(), head=scope.get("method") == "HEAD")

    async def ready_app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI app for ``/ready``."""
        ready, body = await self.readiness()
        await _send_json(send, 200 if ready else 503, body, head=scope.get("method") == "HEAD")


async def _call(check: Check) -> Any:
    if inspect.iscoroutinefunction(check):
        return await check()
    # A sync check may block (a socket call): run it in a thread so the timeout
    # cuts the wait even though the thread itself finishes on its own.
    result = await asyncio.to_thread(check)
    if inspect.isawaitable(result):
        return await result
    return result


async def _send_json(send: Send, status: int, body: dict[str, Any], *, head: bool) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode("ascii")),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else payload})


def redis_check(url: str, *, timeout: float = 2.0) -> Callable[[], Awaitable[None]]:
    """A check that PINGs Redis at ``url`` (``redis://`` or ``rediss://``, e.g. Upstash).

    Needs the ``redis`` extra. Each run opens and closes its own connection, so
    the check recovers by itself when Redis comes back.
    """
    redis_asyncio = require("redis.asyncio", "redis")

    async def check() -> None:
        client = redis_asyncio.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        try:
            await client.ping()
        finally:
            await client.aclose()

    return check


def http_check(
    url: str,
    *,
    timeout: float = 2.0,
    expect_status: Callable[[int], bool] = lambda status: status < 400,
    transport: Any = None,
) -> Callable[[], Awaitable[None]]:
    """A check that GETs ``url`` and expects a non-error status. Needs the ``http`` extra."""
    httpx = require("httpx", "http")

    async def check() -> None:
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
            response = await client.get(url)
        if not expect_status(response.status_code):
            raise RuntimeError(f"GET {redact_text(url)} answered {response.status_code}")

    return check
