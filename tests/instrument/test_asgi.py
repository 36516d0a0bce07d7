"""Golden-signal metrics and request ids over a real uvicorn server."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from soulwatch.instrument import instrument
from soulwatch.instrument.metrics import DEFAULT_BUCKETS
from tests.helpers import UvicornThread
from tests.instrument import apps
from tests.instrument.metrics_text import label_values, total, value

HEX32 = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[UvicornThread]:
    with UvicornThread(apps.build_app(registry)) as running:
        yield running


@pytest.fixture
def client(server: UvicornThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def scrape(client: httpx.Client) -> str:
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.text


def test_requests_are_counted_by_method_route_template_and_exact_status(
    client: httpx.Client,
) -> None:
    client.get("/clusters/abc")
    client.get("/clusters/def")
    client.post("/clusters/abc/jobs")
    client.delete("/clusters/abc")  # the path matches, the method does not: 405

    text = scrape(client)
    assert (
        value(
            text, "http_requests_total", method="GET", route="/clusters/{cluster_id}", status="200"
        )
        == 2
    )
    assert (
        value(
            text,
            "http_requests_total",
            method="POST",
            route="/clusters/{cluster_id}/jobs",
            status="200",
        )
        == 1
    )
    assert (
        value(
            text,
            "http_requests_total",
            method="DELETE",
            route="/clusters/{cluster_id}",
            status="405",
        )
        == 1
    )
    # Raw paths never become label values.
    assert not {"/clusters/abc", "/clusters/def"} & label_values(
        text, "http_requests_total", "route"
    )


def test_duration_histogram_has_the_documented_buckets_with_2s_a_boundary(
    client: httpx.Client,
) -> None:
    client.get("/clusters/abc")
    text = scrape(client)
    les = label_values(text, "http_request_duration_seconds_bucket", "le")
    assert les == {str(float(b)) for b in DEFAULT_BUCKETS} | {"+Inf"}
    assert "2.0" in les
    assert (
        value(
            text,
            "http_request_duration_seconds_count",
            method="GET",
            route="/clusters/{cluster_id}",
        )
        == 1
    )
    assert value(text, "http_requests_in_progress") == 0
    assert (value(text, "http_server_busy_seconds_total") or 0) > 0


def test_unmatched_paths_collapse_into_one_label_value(client: httpx.Client) -> None:
    for path in ("/wp-admin/setup.php", "/.env", "/random/123/456"):
        assert client.get(path).status_code == 404
    text = scrape(client)
    assert value(text, "http_requests_total", method="GET", route="<unmatched>", status="404") == 3
    assert label_values(text, "http_requests_total", "route") == {"<unmatched>"}


def test_unknown_methods_do_not_become_label_values(client: httpx.Client) -> None:
    # A method the server accepts (WebDAV) but not one of the standard nine.
    client.request("PROPFIND", "/clusters/abc")
    text = scrape(client)
    assert label_values(text, "http_requests_total", "method") == {"other"}


def test_streaming_response_is_timed_to_its_last_chunk(client: httpx.Client) -> None:
    response = client.get("/stream")
    assert response.text == "chunk 0\nchunk 1\nchunk 2\n"
    text = scrape(client)
    # Three chunks 0.15 s apart: the observation lies above 0.25 s, not at the
    # moment the headers went out.
    assert value(text, "http_request_duration_seconds_bucket", route="/stream", le="0.25") == 0
    assert value(text, "http_request_duration_seconds_count", route="/stream") == 1
    assert (value(text, "http_request_duration_seconds_sum", route="/stream") or 0) >= 0.45
    # The worker was busy at least as long as the stream ran.
    assert (value(text, "http_server_busy_seconds_total") or 0) >= 0.45


def test_background_tasks_are_not_part_of_the_latency(client: httpx.Client) -> None:
    assert client.get("/background").status_code == 200
    text = scrape(client)
    # The request is recorded and no longer in progress while its 1.5 s
    # background task is still running.
    assert not apps.background_done.is_set()
    assert value(text, "http_requests_total", route="/background", status="200") == 1
    assert value(text, "http_request_duration_seconds_bucket", route="/background", le="2.0") == 1
    assert value(text, "http_requests_in_progress") == 0


def test_unhandled_exception_is_a_500_with_request_id_and_is_counted(
    server: UvicornThread, client: httpx.Client
) -> None:
    # uvicorn closes the connection after an unhandled exception: use a fresh one.
    response = httpx.get(server.url + "/boom")
    assert response.status_code == 500
    assert HEX32.fullmatch(response.headers["x-request-id"])
    text = scrape(client)
    assert value(text, "http_requests_total", route="/boom", status="500") == 1
    assert value(text, "http_exceptions_total", route="/boom", exception="RuntimeError") == 1


def test_request_id_is_kept_when_well_formed_and_replaced_otherwise(client: httpx.Client) -> None:
    kept = client.get("/clusters/a", headers={"X-Request-ID": "req-0123456789abcdef"})
    assert kept.headers["x-request-id"] == "req-0123456789abcdef"
    for bad in ("short", "x" * 10_240, "has spaces in it", "semi;colon;value"):
        response = client.get("/clusters/a", headers={"X-Request-ID": bad})
        assert response.headers["x-request-id"] != bad
        assert HEX32.fullmatch(response.headers["x-request-id"])
    generated = {client.get("/clusters/a").headers["x-request-id"] for _ in range(3)}
    assert len(generated) == 3


def test_own_endpoints_are_not_measured(client: httpx.Client) -> None:
    client.get("/health")
    client.get("/ready")
    scrape(client)
    text = scrape(client)
    assert total(text, "http_requests_total") == 0


def test_openmetrics_when_the_scraper_asks_for_it(client: httpx.Client) -> None:
    client.get("/clusters/a")
    response = client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    )
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    plain = client.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")


def test_health_reports_service_version_and_uptime(client: httpx.Client) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok"
    assert body["service"] == "test-backend"
    assert body["version"] == "unknown"
    assert body["uptime_seconds"] >= 0


def test_two_apps_and_repeated_instrumentation_never_duplicate_timeseries() -> None:
    registry = CollectorRegistry()
    first = apps.build_app(registry)
    second = apps.build_app(registry)
    assert instrument(first, service="again") is instrument(first, service="again")
    # And on prometheus_client's default registry, twice.
    apps.build_app()
    apps.build_app()
    with UvicornThread(first) as a, UvicornThread(second) as b:
        httpx.get(a.url + "/clusters/1")
        httpx.get(b.url + "/clusters/2")
        text = httpx.get(a.url + "/metrics").text
    # Both apps share the registry's series.
    assert value(text, "http_requests_total", route="/clusters/{cluster_id}", status="200") == 2


def test_instrument_after_the_app_served_is_refused() -> None:
    app = FastAPI()
    with UvicornThread(app) as running:
        httpx.get(running.url + "/")
    with pytest.raises(RuntimeError, match="before the app serves"):
        instrument(app, service="late", registry=CollectorRegistry(), configure_logs=False)
