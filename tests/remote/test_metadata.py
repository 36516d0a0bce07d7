"""``metadata_config``: the scraped ``# TYPE``/``# HELP``/``# UNIT`` leave every ``send_interval``.

No receiver at hand exposes what it was sent as metadata (Prometheus 2.42
accepts and drops it; VictoriaMetrics 1.79 ignores it), so a recording
receiver decodes the requests with the remote write 1.0 messages (field
numbers and enum values of ``prompb/types.proto``); a real Prometheus 2.42
receiver shows that it parses them (it answers 2xx to them and 400 to bytes
that are not a WriteRequest).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from soulwatch.remote.proto import WriteRequest, snappy_compress, snappy_decompress
from tests.helpers import (
    RecordedRequest,
    Recorder,
    Reply,
    free_port,
    soulwatch_command,
    started,
    subprocess_env,
)
from tests.remote.receivers import PrometheusReceiver, queue_metric, stop, wait_for

EXPOSITION = b"""\
# HELP app_requests_total Requests served.
# TYPE app_requests_total counter
app_requests_total{code="200"} 5
# HELP app_temperature_celsius Room temperature.
# TYPE app_temperature_celsius gauge
# UNIT app_temperature_celsius celsius
app_temperature_celsius 21.5
# HELP app_latency_seconds Request latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{le="1"} 1
app_latency_seconds_bucket{le="+Inf"} 1
app_latency_seconds_sum 0.5
app_latency_seconds_count 1
"""

# (family, MetricType: COUNTER 1, GAUGE 2, HISTOGRAM 3, help, unit)
EXPECTED = {
    ("app_requests_total", 1, "Requests served.", ""),
    ("app_temperature_celsius", 2, "Room temperature.", "celsius"),
    ("app_latency_seconds", 3, "Request latency.", ""),
}


def _serve(request: RecordedRequest) -> Reply:
    if request.method == "GET":
        return Reply(200, EXPOSITION, {"Content-Type": "text/plain; version=0.0.4"})
    return Reply(204, b"")


def _decoded(request: RecordedRequest) -> Any:
    message = WriteRequest()
    message.ParseFromString(snappy_decompress(request.body))
    return message


def _metadata_requests(recorder: Recorder, path: str) -> list[tuple[float, Any]]:
    out = []
    for request in recorder.received(path):
        message = _decoded(request)
        if message.metadata:
            assert not message.timeseries  # metadata travels in requests of its own
            out.append((request.received_at, message))
    return out


def test_scraped_metadata_is_sent_every_interval_and_prometheus_accepts_it(
    tmp_path: Path,
) -> None:
    prom = PrometheusReceiver(tmp_path)
    port = free_port()
    with Recorder(handler=_serve) as recorder, prom.running():
        config = tmp_path / "soulwatch.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{port}\n"
            f"data_dir: {tmp_path / 'data'}\n"
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"  - {{job_name: app, static_configs: [{{targets: ['127.0.0.1:{recorder.port}']}}]}}\n"
            "remote_write:\n"
            f"  - url: {recorder.url}/with-metadata\n"
            "    queue_config: {batch_send_deadline: 1s}\n"
            "    metadata_config: {send_interval: 1s, max_samples_per_send: 2}\n"
            f"  - url: {recorder.url}/without-metadata\n"
            "    queue_config: {batch_send_deadline: 1s}\n"
            "    metadata_config: {send: false, send_interval: 1s}\n"
            f"  - url: {prom.write_url}\n"
            "    name: prometheus\n"
            "    metadata_config: {send_interval: 1s}\n"
        )
        ready = lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).is_success  # noqa: E731
        argv = soulwatch_command("run", "-c", str(config), "--agent")
        with started(argv, env=subprocess_env(), ready=ready, timeout=60) as proc:
            # Three rounds: the families, in requests of at most two entries each.
            wait_for(
                lambda: len(_metadata_requests(recorder, "/with-metadata")) >= 6, 30, "3 rounds"
            )
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
            stop(proc)
    sent = _metadata_requests(recorder, "/with-metadata")
    assert all(len(message.metadata) <= 2 for _, message in sent)
    rounds: list[set[tuple[str, int, str, str]]] = []
    for i in range(0, 6, 2):
        rounds.append(
            {
                (m.metric_family_name, m.type, m.help, m.unit)
                for _, message in sent[i : i + 2]
                for m in message.metadata
            }
        )
    assert rounds == [EXPECTED, EXPECTED, EXPECTED]
    assert sent[4][0] - sent[0][0] > 1.5  # every send_interval (1 s), not all at once
    # The queue without metadata sent samples, and no metadata.
    assert recorder.received("/without-metadata")
    assert _metadata_requests(recorder, "/without-metadata") == []
    headers = recorder.received("/with-metadata")[0].headers
    assert headers["content-encoding"] == "snappy"
    assert headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert queue_metric(metrics, "prometheus_remote_storage_metadata_total", "prometheus") >= 3
    assert (
        queue_metric(metrics, "prometheus_remote_storage_metadata_failed_total", "prometheus") == 0
    )


def test_prometheus_refuses_what_is_not_a_write_request(tmp_path: Path) -> None:
    # The control for the test above: a 2xx from Prometheus means it parsed the request.
    prom = PrometheusReceiver(tmp_path)
    with prom.running():
        r = httpx.post(
            prom.write_url,
            content=snappy_compress(b"\x1a\x05\x08\x01\x12"),  # a cut-off MetricMetadata
            headers={"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf"},
            timeout=10,
        )
    assert r.status_code == 400
