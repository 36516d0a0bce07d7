"""No data is not "resolved": a stuck-job alert holds through a Redis outage.

The preset's own agents.yml runs over a real Soulcaster collector reading a
real redis-server, written by the Soulcaster-shaped backend's store, on the
simulated clock. Redis goes away for ten minutes while a job is stuck: the
alert keeps firing, marked ``no_data``, and resolves only when the job is done.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from soulwatch.clock import SimulatedClock
from soulwatch.presets import soulcaster as preset
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.state import NO_DATA_ANNOTATION
from soulwatch.sources.collectors import RedisPyReader, SoulcasterCollector
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.tsdb.memory import MemoryStorage
from tests.helpers import RedisServer
from tests.rules.support import RecordingSink

START = 1_780_000_000.0
STEP = 15.0
RULES = Path(preset.__file__).parent / "rules"
AGENTS = RULES / "agents.yml"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat()


class _Platform:
    """The collector, the rules and the clock, advanced together in 15 s steps."""

    def __init__(
        self, redis_url: str, clock: SimulatedClock, rules: Path = AGENTS, step: float = STEP
    ) -> None:
        self.clock = clock
        self.step = step
        self._next: float | None = None
        self.storage = MemoryStorage()
        self.reader = RedisPyReader(redis_url, timeout=0.5)
        self.source = CollectorSource(
            SoulcasterCollector(self.reader, clock=clock),
            self.storage,
            interval=STEP,
            timeout=2.0,
            clock=clock,
        )
        self.sink = RecordingSink(clock)
        self.rules = RuleManager(
            engine=Engine(self.storage, clock=clock),
            storage=self.storage,
            sink=self.sink,
            clock=clock,
            external_labels={"dashboard_url": "https://dashboard.soulcaster.test"},
        )
        self.rules.load([rules])

    async def run_until(self, end: float) -> None:
        t = self._next if self._next is not None else self.clock.time()
        while t <= end:
            self.clock.set_time(t)
            await self.source.run_once(t)
            await self.rules.evaluate_all(t)
            t += self.step
        self._next = t


@pytest.fixture
async def platform(redis_server: RedisServer) -> AsyncIterator[_Platform]:
    built = _Platform(redis_server.url, SimulatedClock(start=START))
    yield built
    await built.reader.aclose()


@pytest.fixture
def store(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    from tests.soulcaster_app.store import RedisStore

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return RedisStore()


async def test_a_stuck_job_alert_holds_through_a_redis_outage_and_resolves_when_the_job_is_done(
    redis_server: RedisServer, store: Any, platform: _Platform
) -> None:
    store.add_job(
        {
            "id": "9b1d",
            "project_id": "proj-7",
            "cluster_id": "cluster-42",
            "status": "running",
            "created_at": _iso(START - 300),
            "updated_at": _iso(START - 300),
        }
    )
    await platform.run_until(START + 660)
    [(_, page)] = platform.sink.firing("AgentJobStuckRunning")
    assert page.labels.get("job_id") == "9b1d"
    assert page.labels.get("project_id") == "proj-7"
    assert page.labels.get("cluster_id") == "cluster-42"
    assert page.annotations["dashboard_url"] == (
        "https://dashboard.soulcaster.test/dashboard/clusters/cluster-42"
    )
    assert NO_DATA_ANNOTATION not in page.annotations

    # Redis goes away for ten minutes (its data kept on disk for the restart).
    client = redis.Redis.from_url(redis_server.url)
    client.save()
    client.close()
    redis_server.stop()
    await platform.run_until(START + 1260)
    assert platform.sink.resolved("AgentJobStuckRunning") == []
    held = platform.sink.firing("AgentJobStuckRunning")[-1][1]
    assert held.starts_at == page.starts_at
    assert "no data since" in held.annotations[NO_DATA_ANNOTATION]
    assert "job=soulcaster, instance=collector" in held.annotations[NO_DATA_ANNOTATION]
    [alert] = platform.rules.active_alerts()
    assert alert.state.value == "firing"

    # Redis is back and the job is still running: the same episode goes on, unmarked.
    redis_server.start()
    await platform.run_until(START + 1380)
    assert platform.sink.resolved("AgentJobStuckRunning") == []
    [alert] = platform.rules.active_alerts()
    assert alert.state.value == "firing"
    assert alert.active_at == page.starts_at
    assert NO_DATA_ANNOTATION not in alert.annotations

    # The job ends: data says it is over.
    store.update_job("9b1d", status="success", updated_at=_iso(START + 1390))
    await platform.run_until(START + 1440)
    [(_, resolved)] = platform.sink.resolved("AgentJobStuckRunning")
    assert resolved.labels.get("job_id") == "9b1d"
    assert NO_DATA_ANNOTATION not in resolved.annotations


async def test_an_aggregated_alert_holds_through_an_outage_longer_than_the_lookback(
    redis_server: RedisServer, store: Any
) -> None:
    """RedditPollerLag drops job and instance (max by project_id): its inputs' source decides."""
    clock = SimulatedClock(start=START)
    platform = _Platform(redis_server.url, clock, rules=RULES / "platform.yml", step=60.0)
    item = {
        "id": "a",
        "project_id": "proj-7",
        "source": "reddit",
        "title": "The CLI hangs",
        "body": "since the last release",
        "created_at": _iso(START - 3600),
    }
    try:
        store.add_feedback_item(item)
        await platform.run_until(START + 7260)
        [(_, page)] = platform.sink.firing("RedditPollerLag")
        assert page.labels.get("project_id") == "proj-7"

        client = redis.Redis.from_url(redis_server.url)
        client.save()
        client.close()
        redis_server.stop()
        # Thirty minutes without data: far past the 5-minute lookback.
        await platform.run_until(START + 7260 + 1800)
        assert platform.sink.resolved("RedditPollerLag") == []
        held = [a for _, a in platform.sink.firing("RedditPollerLag")][-1]
        assert "job=soulcaster, instance=collector" in held.annotations[NO_DATA_ANNOTATION]

        # Back, and the poller ingests again: now the lag is over.
        redis_server.start()
        await platform.run_until(START + 9120)
        assert platform.sink.resolved("RedditPollerLag") == []
        store.add_feedback_item({**item, "id": "b"})
        await platform.run_until(START + 9240)
        (first_at, resolved), *_ = platform.sink.resolved("RedditPollerLag")
        assert first_at > START + 9120
        assert resolved.labels.get("project_id") == "proj-7"
    finally:
        await platform.reader.aclose()
