"""The probe manager: one :class:`ProbeSource` per probe target, each on its own schedule."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from soulwatch.clock import Clock
from soulwatch.redaction import without_credentials
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.base import Scheduler, SourceStatus
from soulwatch.sources.jobs import JobReload, JobSet
from soulwatch.sources.probes.base import Prober, ProbeSource, Timer
from soulwatch.sources.probes.config import ProbeConfig
from soulwatch.sources.probes.http import HTTPProber
from soulwatch.sources.probes.redis import RedisProber
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


@dataclass
class _Job:
    """One running probe job: its sources and their loops."""

    #: the job's ``job_name``
    name: str
    config: ProbeConfig
    #: the config plus what it reads from the environment (targets, token)
    identity: tuple[object, ...]
    sources: list[ProbeSource]
    scheduler: Scheduler

    async def stop(self) -> None:
        """Stop the loops: staleness markers, probers closed."""
        await self.scheduler.stop()

    async def discard(self) -> None:
        """Release the probers of a job that never ran."""
        for source in self.sources:
            await source.prober.close()


#: A new set of probe jobs from :meth:`ProbeManager.prepare`, not yet running.
ProbeReload = JobReload[_Job]


class ProbeManager(JobSet[_Job]):
    """Runs every probe of ``configs`` into ``storage`` on ``clock``.

    ``env`` supplies ``url_env``/``token_env`` values (default: the process
    environment, read here, not at import); ``transport`` replaces the HTTP
    transport of HTTP and Upstash probes; ``timer`` measures latencies.

    Like :class:`~soulwatch.sources.scrape.manager.ScrapeManager`, a new
    config is applied with :meth:`prepare` then :meth:`apply`: unchanged probe
    jobs keep running, removed or changed ones stop (staleness markers), new
    ones start.
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
        runner: BlockingRunner = run_in_thread,
    ) -> None:
        self._storage = storage
        self._runner = runner
        self._clock = clock
        self._env = os.environ if env is None else env
        self._transport = transport
        self._timer = timer
        self._seed = seed
        self._lock = threading.Lock()
        super().__init__()
        self.jobs = self.prepare(configs).jobs
        self.sources: list[ProbeSource] = [s for j in self.jobs for s in j.sources]

    def prepare(
        self, configs: Sequence[ProbeConfig], env: Mapping[str, str] | None = None
    ) -> ProbeReload:
        """Build the probe jobs of ``configs`` that differ from the running ones.

        Changes nothing running; raises :class:`~soulwatch.exceptions.ConfigError`
        (an unset ``url_env`` or ``token_env``). ``env`` replaces the
        environment given at construction (a reload re-reads it).
        """
        if env is not None:
            self._env = env
        current = self.by_name()
        jobs: list[_Job] = []
        for config in configs:
            targets = config.resolved_targets(self._env)
            token = (
                config.token(self._env) if config.prober in ("upstash", "upstash_vector") else None
            )
            identity = (config, tuple(targets), token)
            old = current.get(config.job_name)
            if old is not None and old.identity == identity:
                jobs.append(old)
                continue
            sources = [self._source(config, target) for target in targets]
            scheduler = Scheduler(self._clock, sources, seed=self._seed)
            jobs.append(_Job(config.job_name, config, identity, sources, scheduler))
        return self.plan(jobs)

    def _source(self, config: ProbeConfig, target: str) -> ProbeSource:
        # Credentials in a target URL authenticate the request (redis-py and
        # httpx both read userinfo) but never reach the ``instance`` label.
        instance = without_credentials(target)
        labels = Labels.of(config.labels, job=config.job_name, instance=instance)
        return ProbeSource(
            make_prober(config, self._env, transport=self._transport, timer=self._timer),
            target,
            labels,
            interval=config.interval,
            timeout=config.timeout,
            storage=self._storage,
            clock=self._clock,
            timer=self._timer,
            write_lock=self._lock,
            runner=self._runner,
        )

    async def apply(self, reload: ProbeReload) -> None:
        """Switch to ``reload`` (the result of the latest :meth:`prepare`)."""
        await super().apply(reload)
        self.sources = [s for j in self.jobs for s in j.sources]

    def statuses(self) -> dict[str, SourceStatus]:
        """Status by ``job/instance`` (secrets redacted)."""
        return {s.key: s.status for s in self.sources}
