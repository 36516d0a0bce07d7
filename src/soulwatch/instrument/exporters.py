"""Push exporters: the same instruments sent as DogStatsD or OTLP, without instrumenting twice.

An :class:`ExportLoop` collects the registry every ``interval`` seconds and
hands the families to each exporter. Counters and histogram buckets are
cumulative in the registry; DogStatsD wants deltas, so :class:`DogStatsDExporter`
remembers what it sent last. OTLP gets cumulative points, as Prometheus
data is. Exporters are chosen by URL (:func:`exporter_from_url`):

* ``dogstatsd://127.0.0.1:8125`` — UDP datagrams to a Datadog agent;
* ``otlp+http://127.0.0.1:4318`` (or ``otlp+https://``) — OTLP/HTTP JSON to
  ``<base>/v1/metrics``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.metrics_core import Metric

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument.redact import redact_text

_log = logging.getLogger("soulwatch.instrument.exporters")
_MAX_DATAGRAM: Final = 1432  # fits one Ethernet MTU, the agent's recommendation


class Exporter(Protocol):
    """Sends collected metric families somewhere."""

    def export(self, families: Sequence[Metric], now: float) -> None:
        """Send ``families`` collected at ``now`` (seconds since epoch); may raise on failure."""
        ...


class HttpPost(Protocol):
    """POSTs a body and returns the status code (raises ``OSError`` when unreachable)."""

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """Send and return the status code."""
        ...


def urllib_post(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
    """The default :class:`HttpPost`: the standard library."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def format_value(value: float) -> str:
    """``value`` as the shortest decimal that reads back as exactly the same float.

    Integral values within float's exact integer range drop the ``.0``
    (``1000000``, ``1796401695``); everything else is ``repr(float)``
    (``1796401695.19``, ``1e+16``), never a rounded ``%g``.
    """
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _clean_tag(value: str) -> str:
    return value.replace("|", "_").replace(",", "_").replace("#", "_").replace("\n", " ")


class DogStatsDExporter:
    """Sends the registry as DogStatsD over UDP: gauges as ``|g``, counter deltas as ``|c``.

    Histograms go out as ``<name>_bucket`` (tag ``le``), ``_sum`` and ``_count``
    counter deltas, which Datadog can sum back into the same distribution.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 8125,
        *,
        tags: Mapping[str, str] | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.address = (host, port)
        self.tags = [f"{k}:{_clean_tag(v)}" for k, v in (tags or {}).items()]
        self._sock = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def lines(self, families: Iterable[Metric]) -> list[str]:
        """The DogStatsD lines for ``families`` (updates the remembered counter values)."""
        out: list[str] = []
        for family in families:
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                labels = tuple(sorted(sample.labels.items()))
                if family.type == "gauge":
                    if not math.isfinite(sample.value):
                        continue
                    value, kind = sample.value, "g"
                elif family.type in ("counter", "histogram", "summary"):
                    key = (sample.name, labels)
                    value = sample.value - self._last.get(key, 0.0)
                    self._last[key] = sample.value
                    if value < 0:  # the process restarted: the whole value is new
                        value = sample.value
                    if value == 0:
                        continue
                    kind = "c"
                else:
                    continue
                tags = self.tags + [f"{k}:{_clean_tag(v)}" for k, v in labels]
                suffix = f"|#{','.join(tags)}" if tags else ""
                out.append(f"{sample.name}:{format_value(value)}|{kind}{suffix}")
        return out

    def export(self, families: Sequence[Metric], now: float) -> None:
        """Send the lines, packed into datagrams of at most 1432 bytes."""
        packet: list[bytes] = []
        size = 0
        for line in self.lines(families):
            data = line.encode()
            if packet and size + len(data) + 1 > _MAX_DATAGRAM:
                self._sock.sendto(b"\n".join(packet), self.address)
                packet, size = [], 0
            packet.append(data)
            size += len(data) + 1
        if packet:
            self._sock.sendto(b"\n".join(packet), self.address)

    def close(self) -> None:
        """Close the socket."""
        self._sock.close()


def _attributes(labels: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in sorted(labels.items())]


class OtlpExporter:
    """Sends the registry as OTLP/HTTP JSON to ``<base>/v1/metrics``.

    The body is an ``ExportMetricsServiceRequest``: counters as cumulative
    monotonic sums, gauges as gauges, histograms with explicit bounds.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        service: str,
        resource: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 5.0,
        post: HttpPost = urllib_post,
        start_time: float | None = None,
    ) -> None:
        self.url = endpoint.rstrip("/") + "/v1/metrics"
        self.resource = {"service.name": service, **(resource or {})}
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        self.timeout = timeout
        self.post = post
        self.start_time = start_time

    def payload(self, families: Iterable[Metric], now: float) -> dict[str, Any]:
        """The OTLP JSON request for ``families`` collected at ``now``."""
        if self.start_time is None:
            self.start_time = now
        start_ns, now_ns = _unix_nanos(self.start_time), _unix_nanos(now)
        metrics: list[dict[str, Any]] = []
        for family in families:
            metric = self._metric(family, start_ns, now_ns)
            if metric is not None:
                metrics.append(metric)
        return {
            "resourceMetrics": [
                {
                    "resource": {"attributes": _attributes(self.resource)},
                    "scopeMetrics": [
                        {"scope": {"name": "soulwatch.instrument"}, "metrics": metrics}
                    ],
                }
            ]
        }

    def _metric(self, family: Metric, start_ns: str, now_ns: str) -> dict[str, Any] | None:
        base: dict[str, Any] = {"name": family.name, "description": family.documentation}
        if family.type in ("counter", "gauge"):
            points = [
                {
                    "attributes": _attributes(s.labels),
                    "startTimeUnixNano": start_ns,
                    "timeUnixNano": now_ns,
                    "asDouble": s.value,
                }
                for s in family.samples
                if not s.name.endswith("_created") and math.isfinite(s.value)
            ]
            if family.type == "gauge":
                for point in points:
                    del point["startTimeUnixNano"]
                base["gauge"] = {"dataPoints": points}
            else:
                base["sum"] = {
                    "aggregationTemporality": 2,
                    "isMonotonic": True,
                    "dataPoints": points,
                }
            return base
        if family.type == "histogram":
            base["histogram"] = {
                "aggregationTemporality": 2,
                "dataPoints": _histogram_points(family, start_ns, now_ns),
            }
            return base
        return None

    def export(self, families: Sequence[Metric], now: float) -> None:
        """POST the payload; raises ``OSError`` when the collector refuses or is unreachable."""
        body = json.dumps(self.payload(families, now)).encode()
        status = self.post(self.url, body, self.headers, self.timeout)
        if status >= 400:
            raise OSError(f"OTLP collector at {redact_text(self.url)} answered {status}")


def _unix_nanos(seconds: float) -> str:
    # Through the shortest decimal, not ``seconds * 1e9``: the product rounds to
    # the nearest representable float and 1796401695.19 would come out ...189999872.
    return str(int(Decimal(repr(float(seconds))) * 1_000_000_000))


def _histogram_points(family: Metric, start_ns: str, now_ns: str) -> list[dict[str, Any]]:
    series: dict[tuple[tuple[str, str], ...], dict[str, Any]] = {}
    for s in family.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        entry = series.setdefault(
            tuple(sorted(labels.items())),
            {"labels": labels, "buckets": [], "sum": 0.0, "count": 0.0},
        )
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = s.value
    points = []
    for entry in series.values():
        cumulative = sorted(entry["buckets"])
        bounds = [le for le, _ in cumulative if math.isfinite(le)]
        counts, previous = [], 0.0
        for _, value in cumulative:
            counts.append(str(int(value - previous)))
            previous = value
        points.append(
            {
                "attributes": _attributes(entry["labels"]),
                "startTimeUnixNano": start_ns,
                "timeUnixNano": now_ns,
                "count": str(int(entry["count"])),
                "sum": entry["sum"],
                "bucketCounts": counts,
                "explicitBounds": bounds,
            }
        )
    return points


def exporter_from_url(url: str, *, service: str) -> Exporter:
    """An exporter from a URL: ``dogstatsd://host:port`` or ``otlp+http(s)://host:port``."""
    parts = urlsplit(url)
    if parts.scheme == "dogstatsd":
        return DogStatsDExporter(
            parts.hostname or "127.0.0.1", parts.port or 8125, tags={"service": service}
        )
    if parts.scheme in ("otlp+http", "otlp+https"):
        base = parts._replace(scheme=parts.scheme.removeprefix("otlp+")).geturl()
        return OtlpExporter(base, service=service)
    raise ValueError(
        f"unknown exporter URL {redact_text(url)!r}: use dogstatsd://host:port or otlp+http://host:port"
    )


class ExportLoop:
    """Collects ``registry`` every ``interval`` seconds and hands it to each exporter.

    A failing exporter is logged and retried at the next tick; it never stops
    the others or the loop.
    """

    def __init__(
        self,
        exporters: Sequence[Exporter],
        *,
        registry: CollectorRegistry | None = None,
        interval: float = 10.0,
        clock: Clock | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"export interval must be positive, got {interval}")
        self.exporters = list(exporters)
        self.registry = REGISTRY if registry is None else registry
        self.interval = interval
        self.clock = clock or SystemClock()
        self.failures = 0

    def export_once(self) -> None:
        """Collect now and send to every exporter."""
        families = list(self.registry.collect())
        now = self.clock.time()
        for exporter in self.exporters:
            try:
                exporter.export(families, now)
            except OSError as exc:
                self.failures += 1
                _log.warning(
                    "metrics export failed",
                    extra={"exporter": type(exporter).__name__, "error": redact_text(str(exc))},
                )

    async def run(self) -> None:
        """Export every ``interval`` until cancelled, then once more on the way out."""
        try:
            while True:
                await self.clock.sleep(self.interval)
                await asyncio.to_thread(self.export_once)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.export_once)
            raise
