"""The demo's Redis stand-in answers redis-py and soulwatch's collector like Redis does."""

from __future__ import annotations

import redis.asyncio as aioredis

from soulwatch.clock import SimulatedClock
from soulwatch.demo.miniredis import MiniRedis
from soulwatch.sources.collectors import RedisPyReader, SoulcasterCollector


async def test_redis_py_and_the_collector_work_against_the_stand_in() -> None:
    server = MiniRedis()
    await server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    try:
        assert await client.ping()
        await client.hset(
            "job:1", mapping={"status": "running", "created_at": "2023-11-14T22:00:00"}
        )
        await client.hset(
            "job:2", mapping={"status": "pending", "created_at": "2023-11-14T22:10:00"}
        )
        await client.zadd("feedback:source:p:reddit", {"a": 5.0, "b": 9.0})
        assert await client.hmget("job:1", ["status", "nope"]) == ["running", None]
        assert await client.zrevrange("feedback:source:p:reddit", 0, 0, withscores=True) == [
            ("b", 9.0)
        ]
        info = await client.info("memory")
        assert info["maxmemory"] == 268435456

        reader = RedisPyReader(server.url)
        collector = SoulcasterCollector(reader, clock=SimulatedClock(start=1_700_000_000.0))
        got = {(lbls.name, lbls.get("status")): v for lbls, v in await collector.collect()}
        await reader.aclose()
        assert got[("soulcaster_agent_jobs", "running")] == 1
        assert got[("soulcaster_agent_jobs", "pending")] == 1
        # 2023-11-14T22:00:00 UTC is 1699999200: the running job is 800 s old.
        assert got[("soulcaster_agent_job_oldest_age_seconds", "running")] == 800
    finally:
        await client.aclose()
        await server.stop()
