"""Heartbeats for loops and cron-like jobs (the Reddit poller), healthchecks.io-compatible.

``Heartbeat(url=...)`` takes a ping URL of the form ``<base>/ping/<uuid>``
(soulwatch's or healthchecks.io's) and sends:

========================  ==========================
``ping()``/``success()``  ``<url>``
``start()``               ``<url>/start``
``fail(reason)``          ``<url>/fail`` (reason as the body)
``exit_code(n)``          ``<url>/<n>`` (0 is success)
========================  ==========================

with ``?rid=<uuid>`` pairing a start with its end when a run is tracked.
Sending never raises into the caller and never blocks it longer than
``timeout`` seconds in total, retries included. For those who scrape instead,
``heartbeat_last_success_timestamp_seconds{name}`` and
``heartbeat_last_failure_timestamp_seconds{name}`` move only when the ping was
delivered (a 2xx/3xx answer); a ping that could not be delivered after retries
counts in ``heartbeat_ping_errors_total{name}`` and sets
``heartbeat_last_ping_error_timestamp_seconds{name}`` instead. Bodies (a fail
reason, a log) are scrubbed of secrets before they leave the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Protocol, TypeVar, cast
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument._state import shared
from soulwatch.instrument.redact import redact_text

_log = logging.getLogger("soulwatch.instrument.heartbeat")
F = TypeVar("F", bound=Callable[..., Any])
_MAX_BODY = 100_000  # healthchecks.io keeps at most 100 kB of a ping body


class HeartbeatTransport(Protocol):
    """Sends one HTTP request and returns its status code (raises ``OSError`` on failure)."""

    def __call__(self, method: str, url: str, body: bytes, timeout: float) -> int:
        """Send and return the status code."""
        ...


def urllib_transport(method: str, url: str, body: bytes, timeout: float) -> int:
    """The default transport: the standard library, no extra needed."""
    request = urllib.request.Request(url, data=body or None, method=method)
    request.add_header("User-Agent", "soulwatch-heartbeat")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


class _HeartbeatMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.last_success = Gauge(
            "heartbeat_last_success_timestamp_seconds",
            "When the heartbeat last reported success, seconds since epoch.",
            ("name",),
            registry=registry,
            multiprocess_mode="max",
        )
        self.last_failure = Gauge(
            "heartbeat_last_failure_timestamp_seconds",
            "When the heartbeat last reported failure, seconds since epoch.",
            ("name",),
            registry=registry,
            multiprocess_mode="max",
        )
        self.errors = Counter(
            "heartbeat_ping_errors_total",
            "Pings that could not be delivered after retries.",
            ("name",),
            registry=registry,
        )
        self.last_error = Gauge(
            "heartbeat_last_ping_error_timestamp_seconds",
            "When a ping last failed to be delivered, seconds since epoch.",
            ("name",),
            registry=registry,
            multiprocess_mode="max",
        )


class Heartbeat:
    """A dead man's switch client with healthchecks.io URL semantics."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        timeout: float = 5.0,
        retries: int = 2,
        transport: HeartbeatTransport = urllib_transport,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        registry: CollectorRegistry | None = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"heartbeat url must be http(s)://host/ping/<uuid>, got {redact_text(url)!r}"
            )
        self.url = url.rstrip("/")
        self.name = name or parts.path.rstrip("/").rsplit("/", 1)[-1] or parts.netloc
        self.timeout = timeout
        self.retries = retries
        self.transport = transport
        self.clock = clock or SystemClock()
        self._sleep = sleep
        registry = REGISTRY if registry is None else registry
        self._metrics = shared(registry, "heartbeat", lambda: _HeartbeatMetrics(registry))

    # -- sending ---------------------------------------------------------------

    def _target(self, suffix: str, rid: str | None) -> str:
        url = self.url + suffix
        return f"{url}?rid={rid}" if rid else url

    def send(self, suffix: str = "", body: str = "", rid: str | None = None) -> bool:
        """Send one ping to ``<url><suffix>``; True when delivered. Never raises."""
        target = self._target(suffix, rid)
        # Cut first (bounded work on a huge body), then scrub, then cut the bytes.
        payload = (
            redact_text(body[:_MAX_BODY]).encode("utf-8", "replace")[:_MAX_BODY] if body else b""
        )
        deadline = time.monotonic() + self.timeout
        last_error = ""
        for attempt in range(self.retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                status = self.transport("POST" if payload else "GET", target, payload, remaining)
            except Exception as exc:  # a ping must never break the caller's loop
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                if status < 400:
                    return True
                last_error = f"HTTP {status}"
                if status < 500 and status != 429:
                    break  # 4xx (wrong uuid) will not get better by retrying
            backoff = min(0.2 * 2**attempt, deadline - time.monotonic())
            if attempt < self.retries and backoff > 0:
                self._sleep(backoff)
        self._metrics.errors.labels(self.name).inc()
        self._metrics.last_error.labels(self.name).set(self.clock.time())
        _log.warning(
            "heartbeat ping failed",
            extra={"heartbeat": self.name, "error": redact_text(last_error)},
        )
        return False

    def ping(self, rid: str | None = None) -> bool:
        """Report success (a plain ping)."""
        return self.success(rid=rid)

    def start(self, rid: str | None = None) -> bool:
        """Report that a run started (``/start``)."""
        return self.send("/start", rid=rid)

    def success(self, rid: str | None = None, body: str = "") -> bool:
        """Report success; once delivered, set ``heartbeat_last_success_timestamp_seconds``."""
        return self._report(self._metrics.last_success, "", body, rid)

    def fail(self, reason: str = "", rid: str | None = None) -> bool:
        """Report failure (``/fail``) with ``reason`` (scrubbed) as the body."""
        return self._report(self._metrics.last_failure, "/fail", reason, rid)

    def exit_code(self, code: int, reason: str = "", rid: str | None = None) -> bool:
        """Report a process exit code (``/<code>``; 0 is success, anything else failure)."""
        if not 0 <= code <= 255:
            raise ValueError(f"exit code must be 0..255, got {code}")
        gauge = self._metrics.last_success if code == 0 else self._metrics.last_failure
        return self._report(gauge, f"/{code}", reason, rid)

    def _report(self, gauge: Gauge, suffix: str, body: str, rid: str | None) -> bool:
        # The time is taken when the outcome happened, the gauge moves only if
        # soulwatch really heard of it: a board must not show a success nobody received.
        at = self.clock.time()
        delivered = self.send(suffix, body=body, rid=rid)
        if delivered:
            gauge.labels(self.name).set(at)
        return delivered

    # -- async variants: the blocking send runs in a thread --------------------

    async def aping(self, rid: str | None = None) -> bool:
        """Async :meth:`ping`."""
        return await asyncio.to_thread(self.ping, rid)

    async def astart(self, rid: str | None = None) -> bool:
        """Async :meth:`start`."""
        return await asyncio.to_thread(self.start, rid)

    async def asuccess(self, rid: str | None = None, body: str = "") -> bool:
        """Async :meth:`success`."""
        return await asyncio.to_thread(self.success, rid, body)

    async def afail(self, reason: str = "", rid: str | None = None) -> bool:
        """Async :meth:`fail`."""
        return await asyncio.to_thread(self.fail, reason, rid)

    # -- tracking a run --------------------------------------------------------

    @contextlib.contextmanager
    def run(self) -> Iterator[str]:
        """Send start, then success, or fail with the exception as the reason (re-raised)."""
        rid = str(uuid.uuid4())
        self.start(rid=rid)
        try:
            yield rid
        except BaseException as exc:
            self.fail(_reason(exc), rid=rid)
            raise
        self.success(rid=rid)

    @contextlib.asynccontextmanager
    async def arun(self) -> AsyncIterator[str]:
        """Async :meth:`run`."""
        rid = str(uuid.uuid4())
        await self.astart(rid=rid)
        try:
            yield rid
        except BaseException as exc:
            await self.afail(_reason(exc), rid=rid)
            raise
        await self.asuccess(rid=rid)

    def track(self, func: F) -> F:
        """Decorator: each call of ``func`` (sync or async) is a tracked run."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self.arun():
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.run():
                return func(*args, **kwargs)

        return cast(F, wrapper)


def _reason(exc: BaseException) -> str:
    return redact_text(f"{type(exc).__name__}: {exc}")
