"""The probe manager: one :class:`ProbeSource` per probe target, each on its own schedule."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence

import httpx

from soulwatch.clock import Clock
from soulwatch.sources.base import Scheduler, SourceStatus
from soulwatch.sources.probes.base import Prober, ProbeSource, Timer
from soulwatch.sources.probes.config import ProbeConfig
from soulwatch.sources.probes.http import HTTPProber
from soulwatch.sources.probes.redis import RedisProber, redacted
from soulwatch.sources.probes.tcp import TCPProber
from soulwatch.sources.probes.upstash import UpstashRedisProber, UpstashVectorProber
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage


def make_prober(
    config: ProbeConfig,
    env: Mapping[str, str],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    timer: Timer = time.perf_counter,
) -> Prober:
    """The prober for ``config.prober``."""
    if config.prober == "http":
        return HTTPProber(config.http, transport=transport, timer=timer)
    if config.prober == "tcp":
        return TCPProber(config.tcp, timer=timer)
    if config.prober == "redis":
        return RedisProber(config.redis, timer=timer)
    token = config.token(env)
    if config.prober == "upstash":
        return UpstashRedisProber(token, transport=transport, timer=timer)
    return UpstashVectorProber(token, transport=transport, timer=timer)


class ProbeManager:
    """Runs every probe of ``configs`` into ``storage`` on ``clock``.

    ``env`` supplies ``url_env``/``token_env`` values (default: the process
    environment, read here, not at import); ``transport`` replaces the HTTP
    transport of HTTP and Upstash probes; ``timer`` measures latencies.
    """

    def __init__(
        self,
        configs: Sequence[ProbeConfig],
        storage: Storage,
        *,
        clock: Clock,
        env: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timer: Timer = time.perf_counter,
        seed: int = 0,
    ) -> None:
        env = os.environ if env is None else env
        lock = threading.Lock()
        self.sources: list[ProbeSource] = []
        for config in configs:
            for target in config.resolved_targets(env):
                instance = redacted(target) if config.prober == "redis" else target
                labels = Labels.of(config.labels, job=config.job_name, instance=instance)
                self.sources.append(
                    ProbeSource(
                        make_prober(config, env, transport=transport, timer=timer),
                        target,
                        labels,
                        interval=config.interval,
                        timeout=config.timeout,
                        storage=storage,
                        clock=clock,
                        timer=timer,
                        write_lock=lock,
                    )
                )
        self._scheduler = Scheduler(clock, self.sources, seed=seed)

    def start(self) -> None:
        """Start one loop per probe target."""
        self._scheduler.start()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait until no probe is running."""
        await self._scheduler.settled(timeout)

    async def stop(self) -> None:
        """Stop every loop, mark the probes' series stale, close clients."""
        await self._scheduler.stop()

    def statuses(self) -> dict[str, SourceStatus]:
        """Status by ``job/instance`` (secrets redacted)."""
        return {s.key: s.status for s in self.sources}
