"""Heartbeats against a local server standing in for soulwatch / healthchecks.io."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import Heartbeat
from soulwatch.sources.heartbeats import HeartbeatCheckConfig, HeartbeatsConfig
from tests.api.support import serve
from tests.helpers import Recorder, Reply, free_port
from tests.instrument.metrics_text import value

UUID = "5b7c2a1e-8f0d-4c3a-9e21-1f2d3c4b5a69"


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _paths(recorder: Recorder) -> list[str]:
    return [r.path for r in recorder.received()]


def test_plain_ping_start_fail_and_exit_code_use_healthchecks_urls(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    hb = Heartbeat(f"{recorder.url}/ping/{UUID}", registry=registry)
    assert hb.ping()
    assert hb.start()
    assert hb.fail("reddit returned 503")
    assert hb.exit_code(0)
    assert hb.exit_code(3, "exited")
    assert _paths(recorder) == [
        f"/ping/{UUID}",
        f"/ping/{UUID}/start",
        f"/ping/{UUID}/fail",
        f"/ping/{UUID}/0",
        f"/ping/{UUID}/3",
    ]
    fail = recorder.received()[2]
    assert fail.method == "POST"
    assert fail.body == b"reddit returned 503"


def test_a_tracked_run_pairs_start_and_end_with_one_run_id(
    recorder: Recorder, registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    hb = Heartbeat(
        f"{recorder.url}/ping/{UUID}", name="reddit-poller", registry=registry, clock=clock
    )
    with hb.run() as rid:
        pass
    with pytest.raises(ValueError, match="bad page"), hb.run() as rid2:
        raise ValueError("bad page")
    paths = _paths(recorder)
    assert paths == [
        f"/ping/{UUID}/start?rid={rid}",
        f"/ping/{UUID}?rid={rid}",
        f"/ping/{UUID}/start?rid={rid2}",
        f"/ping/{UUID}/fail?rid={rid2}",
    ]
    assert rid != rid2
    assert recorder.received()[3].body == b"ValueError: bad page"
    text = generate_latest(registry).decode()
    assert (
        value(text, "heartbeat_last_success_timestamp_seconds", name="reddit-poller")
        == clock.time()
    )
    assert (
        value(text, "heartbeat_last_failure_timestamp_seconds", name="reddit-poller")
        == clock.time()
    )


async def test_decorator_tracks_async_functions(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    hb = Heartbeat(f"{recorder.url}/ping/{UUID}", registry=registry)

    @hb.track
    async def poll_once() -> int:
        await asyncio.sleep(0)
        return 7

    assert await poll_once() == 7
    paths = _paths(recorder)
    assert paths[0].startswith(f"/ping/{UUID}/start?rid=")
    assert paths[1].startswith(f"/ping/{UUID}?rid=")


def test_server_errors_are_retried_briefly(recorder: Recorder, registry: CollectorRegistry) -> None:
    recorder.replies = [Reply(status=500), Reply(status=502)]
    slept: list[float] = []
    hb = Heartbeat(f"{recorder.url}/ping/{UUID}", retries=2, sleep=slept.append, registry=registry)
    assert hb.ping()
    assert len(recorder.received()) == 3
    assert slept == [0.2, 0.4]


def test_client_errors_are_not_retried_and_count_as_delivery_errors(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    recorder.default = Reply(status=404)
    hb = Heartbeat(
        f"{recorder.url}/ping/{UUID}", name="poller", registry=registry, sleep=lambda s: None
    )
    assert hb.ping() is False
    assert len(recorder.received()) == 1
    assert (
        value(generate_latest(registry).decode(), "heartbeat_ping_errors_total", name="poller") == 1
    )


def test_an_unreachable_server_never_raises_into_the_caller(registry: CollectorRegistry) -> None:
    hb = Heartbeat(
        f"http://127.0.0.1:{free_port()}/ping/{UUID}",
        name="poller",
        timeout=2.0,
        retries=1,
        sleep=lambda s: None,
        registry=registry,
    )
    with hb.run():
        pass  # start and success both fail to deliver; the block still runs normally
    assert (
        value(generate_latest(registry).decode(), "heartbeat_ping_errors_total", name="poller") == 2
    )


def test_a_transport_that_raises_anything_is_contained(registry: CollectorRegistry) -> None:
    def broken(method: str, url: str, body: bytes, timeout: float) -> int:
        raise RuntimeError("proxy misconfigured")

    hb = Heartbeat(
        "https://hc-ping.com/" + UUID, transport=broken, sleep=lambda s: None, registry=registry
    )
    assert hb.fail("x") is False


def test_bad_urls_are_rejected_up_front() -> None:
    with pytest.raises(ValueError, match="http"):
        Heartbeat("hc-ping.com/" + UUID, registry=CollectorRegistry())


def _gauges(registry: CollectorRegistry, name: str) -> dict[str, float | None]:
    text = generate_latest(registry).decode()
    return {
        metric: value(text, metric, name=name)
        for metric in (
            "heartbeat_last_success_timestamp_seconds",
            "heartbeat_last_failure_timestamp_seconds",
            "heartbeat_last_ping_error_timestamp_seconds",
            "heartbeat_ping_errors_total",
        )
    }


def test_gauges_stay_put_when_nothing_was_delivered(
    registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    closed = Heartbeat(
        f"http://127.0.0.1:{free_port()}/ping/{UUID}",
        name="closed",
        timeout=2.0,
        retries=0,
        clock=clock,
        registry=registry,
    )
    assert closed.ping() is False
    assert closed.fail("reddit returned 503") is False
    assert closed.exit_code(0) is False
    seen = _gauges(registry, "closed")
    assert seen["heartbeat_last_success_timestamp_seconds"] is None
    assert seen["heartbeat_last_failure_timestamp_seconds"] is None
    assert seen["heartbeat_ping_errors_total"] == 3
    assert seen["heartbeat_last_ping_error_timestamp_seconds"] == clock.time()


def test_an_unknown_uuid_is_not_a_success(
    recorder: Recorder, registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    recorder.default = Reply(status=404)  # what soulwatch answers for a uuid it does not know
    hb = Heartbeat(f"{recorder.url}/ping/{UUID}", name="unknown", clock=clock, registry=registry)
    assert hb.ping() is False
    assert _gauges(registry, "unknown")["heartbeat_last_success_timestamp_seconds"] is None

    recorder.default = Reply(status=200)
    clock.set_time(clock.time() + 60)
    assert hb.ping() is True
    assert hb.fail("late") is True
    seen = _gauges(registry, "unknown")
    assert seen["heartbeat_last_success_timestamp_seconds"] == clock.time()
    assert seen["heartbeat_last_failure_timestamp_seconds"] == clock.time()
    assert seen["heartbeat_ping_errors_total"] == 1
    assert seen["heartbeat_last_ping_error_timestamp_seconds"] == clock.time() - 60


def test_fail_bodies_are_scrubbed_before_they_leave(
    recorder: Recorder, registry: CollectorRegistry
) -> None:
    hb = Heartbeat(f"{recorder.url}/ping/{UUID}", registry=registry)
    hb.fail("reddit 503 token=abcdef123456789 api_key: sk-live-1234567890 for ops@example.com")
    with pytest.raises(PermissionError), hb.run():
        raise PermissionError("login failed password=hunter2")
    bodies = [r.body.decode() for r in recorder.received() if "/fail" in r.path]
    assert bodies == [
        "reddit 503 token=[redacted] api_key: [redacted] for [redacted]",
        "PermissionError: login failed password=[redacted]",
    ]


def test_against_soulwatch_an_unknown_uuid_moves_no_gauge_and_bodies_are_stored_clean(
    tmp_path: Path, clock: SimulatedClock, registry: CollectorRegistry
) -> None:
    config = HeartbeatsConfig(
        checks=[
            HeartbeatCheckConfig.model_validate(
                {"name": "reddit-poller", "uuid": UUID, "period": "5m", "grace": "1m"}
            )
        ]
    )
    with serve(tmp_path, clock, heartbeats=config) as served:
        unknown = Heartbeat(
            f"{served.url}/ping/00000000-0000-4000-8000-000000000000",
            name="typo",
            clock=clock,
            registry=registry,
        )
        assert unknown.ping() is False
        known = Heartbeat(
            f"{served.url}/ping/{UUID}", name="reddit-poller", clock=clock, registry=registry
        )
        assert known.fail("reddit 503 token=abcdef123456789 password=hunter2") is True
        pings = served.http.get("/api/v1/heartbeats/reddit-poller/pings").json()["pings"]
    assert pings[0]["body"] == "reddit 503 token=[redacted] password=[redacted]"
    typo = _gauges(registry, "typo")
    assert typo["heartbeat_last_success_timestamp_seconds"] is None
    assert typo["heartbeat_ping_errors_total"] == 1
    assert _gauges(registry, "reddit-poller")["heartbeat_last_failure_timestamp_seconds"] == (
        clock.time()
    )
