"""DogStatsD over a real UDP socket and OTLP/HTTP JSON to a recorder, from the same registry."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import (
    DogStatsDExporter,
    ExportLoop,
    InstrumentConfig,
    OtlpExporter,
    exporter_from_url,
)
from tests.helpers import Recorder, Reply, UvicornThread
from tests.instrument import apps


def _instruments() -> tuple[CollectorRegistry, Counter]:
    registry = CollectorRegistry()
    requests = Counter("http_requests", "r", ["route", "status"], registry=registry)
    requests.labels("/clusters/{id}", "200").inc(3)
    Gauge("agent_jobs_running", "j", registry=registry).set(2)
    h = Histogram(
        "http_request_duration_seconds", "d", ["route"], buckets=(0.1, 2.0), registry=registry
    )
    for v in (0.05, 0.5, 3.0):
        h.labels("/clusters/{id}").observe(v)
    return registry, requests


@pytest.fixture
def registry() -> CollectorRegistry:
    return _instruments()[0]


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        yield sock


def _receive_lines(sock: socket.socket) -> set[str]:
    lines: set[str] = set()
    sock.settimeout(5)
    data, _ = sock.recvfrom(65536)
    lines.update(data.decode().split("\n"))
    sock.settimeout(0.2)
    try:
        while True:
            data, _ = sock.recvfrom(65536)
            lines.update(data.decode().split("\n"))
    except TimeoutError:
        pass
    return lines


def test_dogstatsd_sends_gauges_and_counter_deltas(udp: socket.socket) -> None:
    registry, requests = _instruments()
    port = udp.getsockname()[1]
    exporter = DogStatsDExporter("127.0.0.1", port, tags={"service": "backend"})
    exporter.export(list(registry.collect()), 0.0)
    lines = _receive_lines(udp)
    assert "http_requests_total:3|c|#service:backend,route:/clusters/{id},status:200" in lines
    assert "agent_jobs_running:2|g|#service:backend" in lines
    assert (
        "http_request_duration_seconds_bucket:2|c|#service:backend,le:2.0,route:/clusters/{id}"
        in lines
    )
    assert "http_request_duration_seconds_count:3|c|#service:backend,route:/clusters/{id}" in lines

    # Next export: counters go out as the delta since the last export.
    requests.labels("/clusters/{id}", "200").inc(2)
    exporter.export(list(registry.collect()), 10.0)
    second = _receive_lines(udp)
    assert "http_requests_total:2|c|#service:backend,route:/clusters/{id},status:200" in second
    assert not any(line.startswith("http_request_duration_seconds_count:") for line in second)
    exporter.close()


def test_otlp_json_payload_reaches_the_collector(registry: CollectorRegistry) -> None:
    with Recorder() as collector:
        exporter = OtlpExporter(collector.url, service="backend", start_time=1_700_000_000.0)
        exporter.export(list(registry.collect()), 1_700_000_060.0)
        [request] = collector.received()
    assert request.path == "/v1/metrics"
    assert request.headers["content-type"] == "application/json"
    body = request.json()
    resource = body["resourceMetrics"][0]
    assert {"key": "service.name", "value": {"stringValue": "backend"}} in resource["resource"][
        "attributes"
    ]
    metrics = {m["name"]: m for m in resource["scopeMetrics"][0]["metrics"]}
    total = metrics["http_requests"]["sum"]
    assert total["isMonotonic"] is True
    assert total["aggregationTemporality"] == 2
    assert total["dataPoints"][0]["asDouble"] == 3.0
    assert total["dataPoints"][0]["timeUnixNano"] == str(1_700_000_060 * 10**9)
    assert metrics["agent_jobs_running"]["gauge"]["dataPoints"][0]["asDouble"] == 2.0
    point = metrics["http_request_duration_seconds"]["histogram"]["dataPoints"][0]
    assert point["explicitBounds"] == [0.1, 2.0]
    assert point["bucketCounts"] == ["1", "1", "1"]
    assert point["count"] == "3"
    assert point["sum"] == pytest.approx(3.55)


def test_otlp_refusal_is_an_error_the_loop_survives(registry: CollectorRegistry) -> None:
    with Recorder(default=Reply(status=503)) as collector:
        loop = ExportLoop([OtlpExporter(collector.url, service="backend")], registry=registry)
        loop.export_once()
        loop.export_once()
        assert loop.failures == 2
        assert len(collector.received()) == 2


async def test_export_loop_runs_on_its_interval_and_flushes_on_stop(
    registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    with Recorder() as collector:
        loop = ExportLoop(
            [OtlpExporter(collector.url, service="backend")],
            registry=registry,
            interval=10,
            clock=clock,
        )
        task = asyncio.create_task(loop.run())
        await asyncio.sleep(0)
        assert collector.received() == []
        await clock.advance(10)
        for _ in range(200):  # the export runs in a worker thread
            if collector.received():
                break
            await asyncio.sleep(0.01)
        assert len(collector.received()) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(collector.received()) == 2


def test_exporters_are_chosen_by_url_from_config() -> None:
    config = InstrumentConfig.from_env(
        {"SOULWATCH_EXPORTERS": "dogstatsd://127.0.0.1:8125, otlp+http://127.0.0.1:4318"}
    )
    assert config.exporters == ("dogstatsd://127.0.0.1:8125", "otlp+http://127.0.0.1:4318")
    dogstatsd = exporter_from_url(config.exporters[0], service="backend")
    assert isinstance(dogstatsd, DogStatsDExporter)
    dogstatsd.close()
    otlp = exporter_from_url(config.exporters[1], service="backend")
    assert isinstance(otlp, OtlpExporter)
    assert otlp.url == "http://127.0.0.1:4318/v1/metrics"
    with pytest.raises(ValueError, match="unknown exporter URL"):
        exporter_from_url("kafka://broker", service="backend")


def test_instrumented_app_pushes_its_http_metrics_when_the_server_stops() -> None:
    with Recorder() as collector:
        app = apps.build_app(
            CollectorRegistry(),
            exporters=(f"otlp+http://127.0.0.1:{collector.port}",),
            export_interval=3600,
        )
        with UvicornThread(app) as server:
            assert httpx.get(server.url + "/clusters/7").status_code == 200
            assert collector.received() == []  # the interval has not elapsed
        # Lifespan shutdown flushed once.
        [request] = collector.received("/v1/metrics")
    metrics = {
        m["name"]: m for m in request.json()["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    }
    [point] = metrics["http_requests"]["sum"]["dataPoints"]
    assert point["asDouble"] == 1.0
    assert {"key": "route", "value": {"stringValue": "/clusters/{cluster_id}"}} in point[
        "attributes"
    ]


def test_dogstatsd_values_arrive_exactly_as_large_and_precise_as_they_are(
    udp: socket.socket,
) -> None:
    registry = CollectorRegistry()
    sizes = Counter("payload_bytes", "b", ["size"], registry=registry)
    for label, amount in (("mega", 1e6), ("giga", 1e9), ("peta", 1e15), ("odd", 1_234_567)):
        sizes.labels(label).inc(amount)
    Gauge("process_start_time_seconds", "s", registry=registry).set(1796401695.19)
    Gauge("ratio", "r", registry=registry).set(0.1 + 0.2)
    exporter = DogStatsDExporter("127.0.0.1", udp.getsockname()[1])
    exporter.export(list(registry.collect()), 0.0)
    received: dict[str, str] = {}
    for line in _receive_lines(udp):
        name_value, _, rest = line.partition("|")
        name, _, value = name_value.partition(":")
        received[f"{name}{rest.partition('|#')[2]}"] = value
    exporter.close()
    for label, amount in (("mega", 1e6), ("giga", 1e9), ("peta", 1e15), ("odd", 1_234_567)):
        assert float(received[f"payload_bytes_totalsize:{label}"]) == amount
    assert received["payload_bytes_totalsize:peta"] == "1000000000000000"
    assert received["process_start_time_seconds"] == "1796401695.19"
    assert float(received["ratio"]) == 0.1 + 0.2  # every digit kept: 0.30000000000000004


def test_otlp_timestamps_keep_the_hundredths_of_a_second() -> None:
    registry = CollectorRegistry()
    Gauge("agent_jobs_running", "j", registry=registry).set(1)
    Counter("jobs", "j", registry=registry).inc()
    exporter = OtlpExporter("http://127.0.0.1:1", service="backend", start_time=1796401695.19)
    body = exporter.payload(registry.collect(), 1796401755.27)
    metrics = {m["name"]: m for m in body["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
    [point] = metrics["jobs"]["sum"]["dataPoints"]
    assert point["startTimeUnixNano"] == "1796401695190000000"
    assert point["timeUnixNano"] == "1796401755270000000"
