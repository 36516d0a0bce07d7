"""Heartbeats against a local server standing in for soulwatch / healthchecks.io."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import Heartbeat
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
