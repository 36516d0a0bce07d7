"""OTLP/HTTP from the real OpenTelemetry SDK exporters into a real ``soulwatch run``."""

from __future__ import annotations

import contextlib
import gzip
import json
import time
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tests.rum.support import monitor, value, wait_value

TOKEN = "otlp-push-token-123"


_CONFIG = """\
otlp:
  enabled: true
  interval: 1s
  max_series: 200
auth:
  tokens:
    - name: nextjs
      token_env: OTLP_TOKEN
      scopes: [push]
"""


def _monitor(tmp_path: Path) -> contextlib.AbstractContextManager[httpx.Client]:
    return monitor(tmp_path, _CONFIG, OTLP_TOKEN=TOKEN)


def _server_span(tracer: object, route: str, path: str, status: int, seconds: float) -> None:
    start = time.time_ns()
    span = tracer.start_span(  # type: ignore[attr-defined]
        f"GET {route}",
        kind=SpanKind.SERVER,
        start_time=start,
        attributes={
            "http.route": route,
            "http.request.method": "GET",
            "url.path": path,
            "http.response.status_code": status,
        },
    )
    span.end(end_time=start + int(seconds * 1e9))


def test_server_spans_become_route_metrics_and_otlp_metrics_become_series(tmp_path: Path) -> None:
    with _monitor(tmp_path) as api:
        base = str(api.base_url).rstrip("/")
        resource = Resource.create({"service.name": "dashboard"})
        auth = {"Authorization": f"Bearer {TOKEN}"}

        traces = TracerProvider(resource=resource)
        traces.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=auth))
        )
        tracer = traces.get_tracer("next.js")
        for i in range(8):
            _server_span(tracer, "/api/clusters/[id]", f"/api/clusters/{i}", 200, 0.04)
        for i in range(2):
            _server_span(tracer, "/api/clusters/[id]", f"/api/clusters/{i}", 500, 3.0)
        with tracer.start_as_current_span("fetch backend", kind=SpanKind.CLIENT):
            pass  # a client span is not a request the dashboard served
        traces.shutdown()

        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=auth),
            export_interval_millis=60_000,
        )
        meters = MeterProvider(resource=resource, metric_readers=[reader])
        meter = meters.get_meter("dashboard")
        meter.create_counter("jobs.started", unit="{job}").add(3, {"kind": "fix"})
        meter.create_histogram("render.time", unit="s").record(0.3, {"page": "/"})
        meter.create_up_down_counter("queue.depth").add(4)
        meters.shutdown()  # flushes once

        route = 'job="dashboard",http_route="/api/clusters/[id]"'
        count = "http_server_request_duration_seconds_count"
        wait_value(api, f"sum({count}{{{route}}})", 10)
        assert value(api, f'{count}{{{route},http_response_status_code="500"}}') == 2
        assert value(api, f'{count}{{{route},http_response_status_code="200"}}') == 8
        # The 2 s bucket separates the slow failures from the fast successes.
        bucket = "http_server_request_duration_seconds_bucket"
        assert value(api, f'sum({bucket}{{{route},le="2.0"}})') == 8
        assert value(api, f'sum({bucket}{{{route},le="+Inf"}})') == 10
        wait_value(api, "otlp_received_spans_total", 11)  # the client span too, not counted

        wait_value(api, 'jobs_started_total{job="dashboard",kind="fix"}', 3)
        assert value(api, 'render_time_seconds_count{job="dashboard",page="/"}') == 1
        assert value(api, 'render_time_seconds_bucket{job="dashboard",page="/",le="+Inf"}') == 1
        assert value(api, 'queue_depth{job="dashboard"}') == 4


def test_otlp_needs_a_push_token_and_refuses_bad_bodies(tmp_path: Path) -> None:
    with _monitor(tmp_path) as api:
        proto = {"Content-Type": "application/x-protobuf"}
        assert api.post("/v1/traces", content=b"", headers=proto).status_code == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        bad = api.post("/v1/traces", content=b"\xff\xff\xff", headers={**proto, **auth})
        assert bad.status_code == 400
        assert "invalid OTLP protobuf" in bad.text
        xml = api.post("/v1/metrics", content=b"<x/>", headers={"Content-Type": "text/xml", **auth})
        assert xml.status_code == 415
        bomb = gzip.compress(b"\0" * (8 << 20))
        inflated = api.post(
            "/v1/traces",
            content=bomb,
            headers={**proto, **auth, "Content-Encoding": "gzip"},
        )
        assert (inflated.status_code, "larger than" in inflated.text) == (400, True)

        # OTLP/JSON works too; series past max_series are dropped and counted.
        points = [
            {"asDouble": 1.0, "attributes": [{"key": "n", "value": {"intValue": str(i)}}]}
            for i in range(500)
        ]
        body = {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "x"}}]
                    },
                    "scopeMetrics": [
                        {"metrics": [{"name": "wide", "gauge": {"dataPoints": points}}]}
                    ],
                }
            ]
        }
        ok = api.post(
            "/v1/metrics",
            content=json.dumps(body),
            headers={"Content-Type": "application/json", **auth},
        )
        assert ok.status_code == 200
        wait_value(api, "count(wide)", 200)
        assert value(api, "otlp_dropped_series_total") == 300


@pytest.mark.parametrize("encoding", ["deflate"])
def test_unknown_content_encoding_is_refused(tmp_path: Path, encoding: str) -> None:
    with _monitor(tmp_path) as api:
        reply = api.post(
            "/v1/traces",
            content=b"x",
            headers={
                "Content-Type": "application/x-protobuf",
                "Content-Encoding": encoding,
                "Authorization": f"Bearer {TOKEN}",
            },
        )
        assert reply.status_code == 400
        assert "unsupported Content-Encoding" in reply.text
