"""The golden-signal instruments of an HTTP service.

Names and labels are the contract with the rule pack and with every dashboard
built on Prometheus conventions:

* ``http_requests_total{method, route, status}``
* ``http_request_duration_seconds{method, route}`` (histogram; 2 s is a bucket
  boundary because the P2 latency rule is "P95 > 2 s")
* ``http_requests_in_progress``
* ``http_server_busy_seconds_total`` (wall time with at least one request in
  flight: ``rate()`` of it is the worker's utilisation)
* ``http_exceptions_total{route, exception}``

Every label value is bounded: methods outside the standard set become
``other``, routes are templates or ``<unmatched>``, exceptions are class names.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Final

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, Metric

from soulwatch.instrument._state import shared

DEFAULT_BUCKETS: Final[tuple[float, ...]] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
)
"""Latency buckets in seconds; 2 s is a boundary for the P95 > 2 s rule."""

UNMATCHED_ROUTE: Final = "<unmatched>"
"""The ``route`` label of requests no route matched (scanners, typos)."""

_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def normalise_method(method: str) -> str:
    """The ``method`` label: a standard HTTP method, or ``other`` (it comes from the client)."""
    return method if method in _METHODS else "other"


class HttpMetrics:
    """The HTTP instruments in one registry, plus the bookkeeping for busy time.

    Build it with :meth:`for_registry`, which returns the same object for the
    same registry, so two apps in one process share the series instead of
    colliding. Child series are cached by label tuple: the per-request cost is
    a dict lookup instead of prometheus_client's label validation.
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        buckets: Sequence[float] = DEFAULT_BUCKETS,
        *,
        multiprocess: bool | None = None,
    ) -> None:
        if multiprocess is None:
            multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = registry
        self.buckets = tuple(float(b) for b in buckets)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests served, by method, route template and exact status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its response.",
            ("method", "route"),
            buckets=self.buckets,
            registry=registry,
        )
        # With one process, the in-flight count and busy time are read at scrape
        # time from plain attributes, so a request pays nothing for them; with
        # several workers each must write them to its multiprocess file.
        self.multiprocess = multiprocess
        self.in_progress = Gauge(
            "http_requests_in_progress",
            "HTTP requests being served now.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.busy: Counter | None = None
        if multiprocess:
            self.busy = Counter(
                "http_server_busy_seconds",
                "Wall time with at least one request in flight; rate() of it is utilisation.",
                registry=registry,
            )
        else:
            self.in_progress.set_function(lambda: float(self._inflight))
            registry.register(_BusyCollector(self))
        self.exceptions = Counter(
            "http_exceptions_total",
            "Unhandled exceptions raised while serving a request, by route and class.",
            ("route", "exception"),
            registry=registry,
        )
        self._request_children: dict[tuple[str, str, int], Counter] = {}
        self._duration_children: dict[tuple[str, str], Histogram] = {}
        self._inflight = 0
        self._busy_since = 0.0
        self._busy_total = 0.0

    @classmethod
    def for_registry(
        cls, registry: CollectorRegistry | None = None, buckets: Sequence[float] | None = None
    ) -> HttpMetrics:
        """The shared instruments of ``registry`` (default: prometheus_client's)."""
        registry = REGISTRY if registry is None else registry
        wanted = DEFAULT_BUCKETS if buckets is None else tuple(float(b) for b in buckets)
        metrics = shared(registry, "http", lambda: cls(registry, wanted))
        if buckets is not None and metrics.buckets != wanted:
            raise ValueError(
                "http_request_duration_seconds is already registered in this registry with "
                f"buckets {metrics.buckets}; cannot use {wanted} too"
            )
        return metrics

    def request_started(self, now: float) -> None:
        """Count a request in flight (``now`` is a ``perf_counter`` reading)."""
        if self._inflight == 0:
            self._busy_since = now
        self._inflight += 1
        if self.multiprocess:
            self.in_progress.inc()

    def request_finished(self, method: str, route: str, status: int, started: float) -> None:
        """Record a finished request that started at ``started`` (``perf_counter``)."""
        now = time.perf_counter()
        self._inflight -= 1
        if self.multiprocess:
            self.in_progress.dec()
        if self._inflight == 0:
            self._add_busy(now - self._busy_since)
        key = (method, route, status)
        counter = self._request_children.get(key)
        if counter is None:
            counter = self._request_children[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        hkey = (method, route)
        histogram = self._duration_children.get(hkey)
        if histogram is None:
            histogram = self._duration_children[hkey] = self.duration.labels(method, route)
        histogram.observe(now - started)

    def _add_busy(self, seconds: float) -> None:
        if self.busy is not None:
            self.busy.inc(seconds)
        else:
            self._busy_total += seconds

    def exception_raised(self, route: str, exc: BaseException) -> None:
        """Count an unhandled exception by route and exception class name."""
        self.exceptions.labels(route, type(exc).__name__).inc()

    def busy_seconds(self) -> float:
        """Busy time so far, including the running stretch (single-process mode)."""
        total = self._busy_total
        if self._inflight > 0:
            total += time.perf_counter() - self._busy_since
        return total

    def flush_busy(self) -> None:
        """Write the running busy stretch to the counter, so a scrape sees it now."""
        if self.busy is not None and self._inflight > 0:
            now = time.perf_counter()
            self.busy.inc(now - self._busy_since)
            self._busy_since = now


class _BusyCollector:
    """Exposes ``http_server_busy_seconds_total`` from :class:`HttpMetrics` at scrape time."""

    def __init__(self, metrics: HttpMetrics) -> None:
        self._metrics = metrics

    def describe(self) -> list[Metric]:
        return [self._family(0.0)]

    def collect(self) -> list[Metric]:
        return [self._family(self._metrics.busy_seconds())]

    @staticmethod
    def _family(value: float) -> Metric:
        return CounterMetricFamily(
            "http_server_busy_seconds",
            "Wall time with at least one request in flight; rate() of it is utilisation.",
            value=value,
        )
