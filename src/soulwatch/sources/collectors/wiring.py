"""The scheduled sources of the ``collectors:`` section."""

from __future__ import annotations

from collections.abc import Callable

from soulwatch.clock import Clock
from soulwatch.exceptions import ConfigError
from soulwatch.runner import BlockingRunner
from soulwatch.sources.base import Source
from soulwatch.sources.collectors.config import (
    E2BCollectorConfig,
    SoulcasterCollectorConfig,
    VercelCollectorConfig,
)
from soulwatch.sources.collectors.e2b import E2BCollector
from soulwatch.sources.collectors.redis_reader import RedisPyReader, RedisReader, UpstashRestReader
from soulwatch.sources.collectors.soulcaster import FailedJob, SoulcasterCollector
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.sources.collectors.vercel import VercelCollector
from soulwatch.tsdb.storage import Storage


class FailedJobsFeed:
    """The failed agent jobs the Soulcaster collector saw last (alert evidence), if any."""

    def __init__(self) -> None:
        self.collector: SoulcasterCollector | None = None

    def __call__(self) -> list[FailedJob]:
        return list(self.collector.recent_failures) if self.collector is not None else []


def collector_sources(
    sc: SoulcasterCollectorConfig | None,
    e2b: E2BCollectorConfig | None,
    storage: Storage,
    clock: Clock,
    runner: BlockingRunner,
    *,
    vercel: VercelCollectorConfig | None = None,
    failed_jobs: FailedJobsFeed | None = None,
) -> list[Source]:
    """One source per configured collector; raises :class:`ConfigError` before opening any."""
    if sc is not None and not sc.redis_url and not (sc.upstash_rest_url and sc.upstash_rest_token):
        raise ConfigError(
            "collectors.soulcaster needs redis_url, or upstash_rest_url and upstash_rest_token"
        )
    sources: list[Source] = []
    hours_used: Callable[[], float] | None = None
    if sc is not None:
        reader: RedisReader
        if sc.redis_url:
            reader = RedisPyReader(sc.redis_url)
        else:
            reader = UpstashRestReader(sc.upstash_rest_url or "", sc.upstash_rest_token or "")
        collector = SoulcasterCollector(reader, sc, clock=clock)
        if failed_jobs is not None:
            failed_jobs.collector = collector
        # Sandbox-hours this month come from the agent jobs' durations.
        hours_used = collector.sandbox_hours_this_month
        sources.append(
            CollectorSource(
                collector, storage, interval=sc.interval_seconds, clock=clock, runner=runner
            )
        )
    if e2b is not None:
        sources.append(
            CollectorSource(
                E2BCollector(e2b, hours_used=hours_used),
                storage,
                interval=e2b.interval_seconds,
                timeout=e2b.timeout_seconds,
                clock=clock,
                runner=runner,
            )
        )
    if vercel is not None:
        sources.append(
            CollectorSource(
                VercelCollector(vercel, clock=clock),
                storage,
                interval=vercel.interval_seconds,
                timeout=vercel.timeout_seconds,
                clock=clock,
                runner=runner,
            )
        )
    return sources
