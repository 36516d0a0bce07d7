"""OTLP requests into series: server spans into route metrics, metric points as they are.

Names follow Prometheus's own OTLP translation: dots become underscores, the
unit is appended (``s`` → ``_seconds``, ``ms`` → ``_milliseconds``, ``By`` →
``_bytes``), monotonic sums end in ``_total``. The resource's
``service.name`` becomes ``job`` and ``service.instance.id`` ``instance``;
point attributes become labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from soulwatch.otlp.series import SeriesStore, label_name
from soulwatch.tsdb.model import Labels

#: The span-metrics histogram (OpenTelemetry's HTTP server duration metric).
ROUTE_METRIC = "http_server_request_duration_seconds"
#: Its buckets: the SDK's, with a 2 s bound for the seed's latency rule.
ROUTE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)

_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "By": "bytes"}
_DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in ("int_value", "double_value"):
        return str(getattr(value, kind))
    if kind == "array_value":
        return json.dumps([_value(v) for v in value.array_value.values])
    return ""  # kvlist and bytes values make no sensible label


def attributes(items: Iterable[KeyValue]) -> dict[str, str]:
    """Attributes as plain strings."""
    return {kv.key: _value(kv.value) for kv in items}


def _target(resource: dict[str, str]) -> dict[str, str]:
    return {
        "job": resource.get("service.name", "unknown_service"),
        "instance": resource.get("service.instance.id", ""),
    }


def metric_name(name: str, unit: str, *, monotonic: bool) -> str:
    """Prometheus's name for an OTLP metric."""
    out = label_name(name)
    suffix = _UNITS.get(unit, "")
    if suffix and not out.endswith("_" + suffix):
        out += "_" + suffix
    if monotonic and not out.endswith("_total"):
        out += "_total"
    return out


def add_spans(store: SeriesStore, request: ExportTraceServiceRequest) -> int:
    """Count each server span in the route histogram; returns how many spans were read."""
    seen = 0
    for resource_spans in request.resource_spans:
        target = _target(attributes(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                seen += 1
                if span.kind != Span.SpanKind.SPAN_KIND_SERVER:
                    continue
                attrs = attributes(span.attributes)
                route = attrs.get("http.route") or attrs.get("next.route") or "other"
                method = attrs.get("http.request.method") or attrs.get("http.method", "")
                status = attrs.get("http.response.status_code") or attrs.get("http.status_code")
                labels = Labels.of(
                    target,
                    http_route=route,
                    http_request_method=method,
                    http_response_status_code=status or "",
                )
                seconds = max(0, span.end_time_unix_nano - span.start_time_unix_nano) / 1e9
                counts = [0.0] * (len(ROUTE_BUCKETS) + 1)
                counts[_bucket(seconds)] = 1.0
                store.observe(
                    ROUTE_METRIC,
                    labels,
                    ROUTE_BUCKETS,
                    counts,
                    total=seconds,
                    count=1.0,
                    delta=True,
                )
    return seen


def _bucket(seconds: float) -> int:
    for i, bound in enumerate(ROUTE_BUCKETS):
        if seconds <= bound:
            return i
    return len(ROUTE_BUCKETS)


def add_metrics(store: SeriesStore, request: ExportMetricsServiceRequest) -> tuple[int, int]:
    """Store every point; returns (points stored, points of unsupported types)."""
    stored = unsupported = 0
    for resource_metrics in request.resource_metrics:
        target = _target(attributes(resource_metrics.resource.attributes))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                n, skipped = _metric(store, target, metric)
                stored += n
                unsupported += skipped
    return stored, unsupported


def _labels(target: dict[str, str], point: Any) -> Labels:
    attrs = {label_name(k): v for k, v in attributes(point.attributes).items()}
    return Labels.of(attrs, **target)


def _number(point: Any) -> float:
    return float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double


def _metric(store: SeriesStore, target: dict[str, str], metric: Any) -> tuple[int, int]:
    kind = metric.WhichOneof("data")
    if kind == "gauge":
        name = metric_name(metric.name, metric.unit, monotonic=False)
        for point in metric.gauge.data_points:
            store.set(name, _labels(target, point), _number(point))
        return len(metric.gauge.data_points), 0
    if kind == "sum":
        data = metric.sum
        name = metric_name(metric.name, metric.unit, monotonic=data.is_monotonic)
        delta = data.aggregation_temporality == _DELTA
        for point in data.data_points:
            store.set(name, _labels(target, point), _number(point), delta=delta)
        return len(data.data_points), 0
    if kind == "histogram":
        data = metric.histogram
        name = metric_name(metric.name, metric.unit, monotonic=False)
        delta = data.aggregation_temporality == _DELTA
        for point in data.data_points:
            bounds = tuple(point.explicit_bounds)
            counts = [float(c) for c in point.bucket_counts]
            if len(counts) != len(bounds) + 1:
                counts = [0.0] * len(bounds) + [float(point.count)]
            store.observe(
                name,
                _labels(target, point),
                bounds,
                counts,
                total=point.sum,
                count=float(point.count),
                delta=delta,
            )
        return len(data.data_points), 0
    if kind == "summary":
        name = metric_name(metric.name, metric.unit, monotonic=False)
        for point in metric.summary.data_points:
            labels = _labels(target, point)
            for q in point.quantile_values:
                store.set(name, labels.with_(quantile=repr(q.quantile)), q.value)
            store.set(name + "_sum", labels, point.sum)
            store.set(name + "_count", labels, float(point.count))
        return len(metric.summary.data_points), 0
    # Exponential histograms have no classic-series form here yet.
    points = getattr(getattr(metric, kind or "", None), "data_points", ())
    return 0, len(points)
