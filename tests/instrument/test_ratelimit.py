"""Outbound rate-limit headers from real HTTP responses: httpx (sync, async) and requests."""

from __future__ import annotations

import httpx
import pytest
import requests
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.instrument import RateLimitRecorder
from tests.helpers import Recorder, Reply
from tests.instrument.metrics_text import value

REDDIT = {"X-Ratelimit-Remaining": "598.0", "X-Ratelimit-Used": "2", "X-Ratelimit-Reset": "412"}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


def _metric(registry: CollectorRegistry, name: str, api: str) -> float | None:
    return value(generate_latest(registry).decode(), name, api=api)


def test_httpx_sync_hook_reads_reddit_headers(registry: CollectorRegistry) -> None:
    with Recorder(default=Reply(headers=REDDIT)) as api:
        limits = RateLimitRecorder("reddit", registry=registry)
        with httpx.Client(event_hooks={"response": [limits.httpx_hook()]}) as client:
            client.get(api.url + "/r/soulcaster/new.json")
    assert _metric(registry, "outbound_ratelimit_remaining", "reddit") == 598
    assert _metric(registry, "outbound_ratelimit_used", "reddit") == 2
    assert _metric(registry, "outbound_ratelimit_reset_seconds", "reddit") == 412


async def test_httpx_async_hook(registry: CollectorRegistry) -> None:
    with Recorder(default=Reply(headers={"x-ratelimit-remaining": "10"})) as api:
        limits = RateLimitRecorder("reddit", registry=registry)
        async with httpx.AsyncClient(
            event_hooks={"response": [limits.httpx_async_hook()]}
        ) as client:
            await client.get(api.url + "/api/v1/me")
    assert _metric(registry, "outbound_ratelimit_remaining", "reddit") == 10


def test_requests_adapter_and_github_style_epoch_reset(
    registry: CollectorRegistry, clock: SimulatedClock
) -> None:
    reset_at = clock.time() + 1800
    headers = {"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": str(int(reset_at))}
    with Recorder(default=Reply(headers=headers)) as api:
        limits = RateLimitRecorder("github", registry=registry, clock=clock)
        with requests.Session() as session:
            session.mount(api.url, limits.requests_adapter())
            assert session.get(api.url + "/repos/x/y", timeout=10).status_code == 200
    assert _metric(registry, "outbound_ratelimit_remaining", "github") == 4999
    assert _metric(registry, "outbound_ratelimit_reset_seconds", "github") == 1800


def test_responses_without_or_with_garbage_headers_change_nothing(
    registry: CollectorRegistry,
) -> None:
    limits = RateLimitRecorder("reddit", registry=registry)
    assert limits.record({"content-type": "text/html"}) is False
    assert limits.record({"x-ratelimit-remaining": "lots"}) is False
    assert _metric(registry, "outbound_ratelimit_remaining", "reddit") is None
