"""The demo's runner and poller write Redis as the platform does, and obey the faults."""

from __future__ import annotations

import redis.asyncio as aioredis

from soulwatch.clock import SimulatedClock
from soulwatch.demo.faults import Faults
from soulwatch.demo.miniredis import MiniRedis
from soulwatch.demo.workers import AgentRunner, RedditPoller
from soulwatch.sources.collectors import RedisPyReader, SoulcasterCollector


async def _collect(collector: SoulcasterCollector) -> dict[tuple[str, str], float]:
    return {
        (lbls.name, lbls.get("status") or lbls.get("category")): v
        for lbls, v in await collector.collect()
    }


async def test_runner_jobs_progress_and_faults_show_in_the_collector(clock: SimulatedClock) -> None:
    server = MiniRedis()
    await server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    faults = Faults(agent_failure_rate=0.0)
    runner = AgentRunner(client, clock, faults, every=60, work=120)
    reader = RedisPyReader(server.url)
    collector = SoulcasterCollector(reader, clock=clock)
    try:
        for _ in range(6):
            await runner.tick()
            clock.set_time(clock.time() + 60)
        got = await _collect(collector)
        assert got[("soulcaster_agent_jobs", "success")] >= 3
        assert got[("soulcaster_agent_jobs", "failed")] == 0

        faults.agent_failure_rate = 1.0
        faults.runner_stalled = True
        for _ in range(12):
            await runner.tick()
            clock.set_time(clock.time() + 60)
        got = await _collect(collector)
        # Jobs that were running fail with categorised logs; new ones stay pending.
        assert got[("soulcaster_agent_jobs", "failed")] >= 1
        assert got[("soulcaster_agent_job_oldest_age_seconds", "pending")] >= 600
        failed = sum(
            v for (name, _), v in got.items() if name == "soulcaster_agent_jobs_finished_total"
        )
        assert failed >= 1
    finally:
        await reader.aclose()
        await client.aclose()
        await server.stop()


async def test_poller_ingests_and_pings_until_stalled(clock: SimulatedClock) -> None:
    server = MiniRedis()
    await server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    faults = Faults()
    pings: list[float] = []

    async def heartbeat() -> None:
        pings.append(clock.time())

    poller = RedditPoller(client, clock, faults, heartbeat=heartbeat)
    try:
        await poller.tick()
        faults.poller_stalled = True
        clock.set_time(clock.time() + 300)
        await poller.tick()
        assert pings == [clock.time() - 300]
        # One item ingested at the first tick, scored by its post time (before the tick).
        assert await client.zcard("feedback:source:demo:reddit") == 1
        top = await client.zrevrange("feedback:source:demo:reddit", 0, 0, withscores=True)
        assert top[0][1] < clock.time() - 300
    finally:
        await client.aclose()
        await server.stop()
