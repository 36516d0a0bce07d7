"""/health and /ready: real redis-server, concurrent checks with timeouts, caching."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import HealthChecks, http_check, instrument, redis_check
from tests.helpers import Recorder, RedisServer, Reply, UvicornThread
from tests.instrument import apps
from tests.instrument.metrics_text import value


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def test_ready_names_redis_when_it_stops_and_recovers_when_it_restarts(
    redis_server: RedisServer, registry: CollectorRegistry
) -> None:
    app = apps.build_app(registry)
    instrument(app, service="test-backend").add_check(
        "redis", redis_check(redis_server.url, timeout=1.0), cache_seconds=0
    )
    with UvicornThread(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        ready = client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"]["redis"]["ok"] is True

        redis_server.stop()
        down = client.get("/ready")
        assert down.status_code == 503
        body = down.json()
        assert body["status"] == "fail"
        assert list(body["failing"]) == ["redis"]
        assert "Connection" in body["failing"]["redis"] or "connect" in body["failing"]["redis"]
        assert client.get("/health").status_code == 200  # liveness is not readiness
        text = client.get("/metrics").text
        assert value(text, "health_check_status", check="redis") == 0

        redis_server.start()
        again = client.get("/ready")
        assert again.status_code == 200
        assert value(client.get("/metrics").text, "health_check_status", check="redis") == 1


async def test_a_hanging_check_is_cut_at_its_timeout_while_others_run_concurrently(
    registry: CollectorRegistry,
) -> None:
    health = HealthChecks(service="svc", registry=registry)

    async def hangs() -> None:
        await asyncio.sleep(60)

    def blocks() -> None:
        time.sleep(0.3)  # a sync check stuck in a socket call

    health.add("hangs", hangs, timeout=0.2)
    health.add("blocks", blocks, timeout=0.1)
    health.add("fine", lambda: True, timeout=1.0)
    started = time.monotonic()
    ready, body = await health.readiness()
    elapsed = time.monotonic() - started
    assert not ready
    assert body["failing"] == {"hangs": "timed out after 0.2s", "blocks": "timed out after 0.1s"}
    assert body["checks"]["fine"]["ok"] is True
    # Concurrent, and cut: far below the 60 s the check would take.
    assert elapsed < 30


async def test_non_critical_failures_are_reported_but_do_not_fail_readiness(
    registry: CollectorRegistry,
) -> None:
    health = HealthChecks(service="svc", registry=registry)

    def broken() -> bool:
        raise ConnectionError("vector store down; url https://user:s3cret@vector.example")

    health.add("vector", broken, critical=False)
    health.add("false", lambda: False, critical=False)
    ready, body = await health.readiness()
    assert ready
    assert body["failing"]["false"] == "check returned False"
    assert body["failing"]["vector"].startswith("ConnectionError: vector store down")
    assert "s3cret" not in body["failing"]["vector"]
    exposition = generate_latest(registry).decode()
    assert value(exposition, "health_check_status", check="vector") == 0
    assert value(exposition, "health_check_duration_seconds", check="vector") is not None


async def test_results_are_cached_for_their_cache_time(
    clock: SimulatedClock, registry: CollectorRegistry
) -> None:
    calls: list[float] = []
    health = HealthChecks(service="svc", clock=clock, registry=registry)
    health.add("counted", lambda: calls.append(clock.time()), cache_seconds=5)
    await health.run()
    await health.run()
    assert len(calls) == 1
    await clock.advance(5)
    await health.run()
    assert len(calls) == 2


async def test_http_check_follows_the_dependency_status(registry: CollectorRegistry) -> None:
    with Recorder(default=Reply(status=503)) as dependency:
        health = HealthChecks(service="svc", registry=registry)
        health.add("dashboard", http_check(dependency.url + "/api/health"), cache_seconds=0)
        ready, body = await health.readiness()
        assert not ready
        assert "answered 503" in body["failing"]["dashboard"]
        dependency.default = Reply(status=200)
        ready, _ = await health.readiness()
        assert ready


def test_checks_passed_to_instrument_are_registered(registry: CollectorRegistry) -> None:
    app2 = FastAPI()
    instrumentation = instrument(
        app2,
        service="svc",
        registry=registry,
        configure_logs=False,
        checks={"always": lambda: None},
    )
    assert instrumentation.health.names == ["always"]


def test_invalid_timeout_is_rejected_with_the_check_name(registry: CollectorRegistry) -> None:
    health = HealthChecks(service="svc", registry=registry)
    with pytest.raises(ValueError, match="'redis'"):
        health.add("redis", lambda: None, timeout=0)
