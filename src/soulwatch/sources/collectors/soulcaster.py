"""The Soulcaster collector: job and ingest signals read from the platform's Redis as it is.

No change to the platform is needed. It reads:

* agent jobs, hashes ``job:{id}`` (``status`` pending|running|success|failed,
  ``created_at``, ``updated_at``, ``logs``...);
* cluster jobs, hashes ``cluster_job:{project_id}:{job_id}`` (``status``
  pending|running|succeeded|failed, ``started_at``, ``finished_at``, ``error``);
* Reddit items, sorted sets ``feedback:source:{project_id}:reddit`` scored by post time.

Cost stays bounded as history grows: keys are discovered with ``SCAN`` (never
``KEYS``) under a per-cycle budget, the cursor carrying over to the next
cycle; a job seen in a terminal state is never read again; only pending and
running jobs are re-read each cycle, in one pipelined round trip.

Finished jobs are counted once each. Jobs already finished when the collector
first sweeps the keyspace are the baseline and are not counted, so a restart
of soulwatch does not make ``rate()`` see every historical job at once.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from soulwatch.clock import Clock, SystemClock
from soulwatch.sources.collectors.base import CollectedSample, Histogram, parse_timestamp, sample
from soulwatch.sources.collectors.config import SoulcasterCollectorConfig
from soulwatch.sources.collectors.redis_reader import RedisReader

AGENT_STATUSES = ("pending", "running", "success", "failed")
CLUSTER_STATUSES = ("pending", "running", "succeeded", "failed")
_ACTIVE = frozenset({"pending", "running"})
_AGENT_FIELDS = ("status", "created_at", "updated_at")
_CLUSTER_FIELDS = ("status", "started_at", "finished_at")


@dataclass
class _Sweep:
    """A SCAN over one key pattern that carries its cursor across cycles."""

    match: str
    cursor: int = 0
    passes: int = 0

    async def step(self, reader: RedisReader, count: int, budget: int) -> list[str]:
        found: list[str] = []
        for _ in range(budget):
            self.cursor, keys = await reader.scan(self.cursor, self.match, count)
            found.extend(keys)
            if self.cursor == 0:
                self.passes += 1
                break
        return found


@dataclass
class _JobTable:
    """What is known of one kind of job (agent or cluster)."""

    statuses: tuple[str, ...]
    success: str
    active: dict[str, tuple[str, float | None]] = field(default_factory=dict)
    terminal: set[str] = field(default_factory=set)
    terminal_counts: Counter[str] = field(default_factory=Counter)
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)

    def known(self, key: str) -> bool:
        return key in self.terminal or key in self.active


class SoulcasterCollector:
    """Collects ``soulcaster_*`` metrics from the platform's Redis."""

    name = "soulcaster"

    def __init__(
        self,
        reader: RedisReader,
        config: SoulcasterCollectorConfig | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.config = config or SoulcasterCollectorConfig()
        self._reader = reader
        self._clock = clock or SystemClock()
        self._patterns = [
            (p.category, re.compile(p.pattern, re.IGNORECASE)) for p in self.config.failure_patterns
        ]
        self._agent_sweep = _Sweep("job:*")
        self._cluster_sweep = _Sweep("cluster_job:*")
        self._reddit_sweep = _Sweep("feedback:source:*:reddit")
        self._agents = _JobTable(AGENT_STATUSES, "success")
        self._clusters = _JobTable(CLUSTER_STATUSES, "succeeded")
        self._agent_duration = Histogram(
            "soulcaster_agent_job_duration_seconds", self.config.duration_buckets
        )
        self._cluster_duration = Histogram(
            "soulcaster_cluster_job_duration_seconds", self.config.duration_buckets
        )
        self._reddit_keys: set[str] = set()
        self._month_seconds: dict[str, float] = {}
        self._running_seconds_this_month = 0.0

    def sandbox_hours_this_month(self) -> float:
        """Agent-job hours in the current UTC month: finished jobs plus running ones so far."""
        month = _month(self._clock.time())
        return (self._month_seconds.get(month, 0.0) + self._running_seconds_this_month) / 3600.0

    async def aclose(self) -> None:
        """Close the Redis reader's connections."""
        await self._reader.aclose()

    async def collect(self) -> list[CollectedSample]:
        """One cycle: discover keys under budget, refresh active jobs, render the samples."""
        cfg = self.config
        # Jobs found finished during the first full sweep are the baseline.
        agent_baseline = self._agent_sweep.passes == 0
        cluster_baseline = self._cluster_sweep.passes == 0
        new_agents = [
            k
            for k in await self._agent_sweep.step(self._reader, cfg.scan_count, cfg.scan_budget)
            if _is_agent_key(k) and not self._agents.known(k)
        ]
        new_clusters = [
            k
            for k in await self._cluster_sweep.step(self._reader, cfg.scan_count, cfg.scan_budget)
            if not self._clusters.known(k)
        ]
        self._reddit_keys.update(
            await self._reddit_sweep.step(self._reader, cfg.scan_count, cfg.scan_budget)
        )
        await self._refresh_agents(new_agents, baseline=agent_baseline)
        await self._refresh_clusters(new_clusters, baseline=cluster_baseline)
        newest = await self._reader.zrevrange_top(sorted(self._reddit_keys))
        return self._render(newest)

    async def _refresh_agents(self, new_keys: list[str], *, baseline: bool) -> None:
        table = self._agents
        keys = [*table.active, *new_keys]
        rows = await self._reader.hmget_many(keys, _AGENT_FIELDS)
        failed_now: list[str] = []
        durations: dict[str, float | None] = {}
        for key, (status, created, updated) in zip(keys, rows, strict=True):
            start, end = parse_timestamp(created), parse_timestamp(updated)
            if status is None:  # the key is gone
                table.active.pop(key, None)
                continue
            if status in _ACTIVE or status not in table.statuses:
                table.active[key] = (status, start)
                continue
            was_active = table.active.pop(key, None) is not None
            table.terminal.add(key)
            table.terminal_counts[status] += 1
            duration = end - start if start is not None and end is not None else None
            if duration is not None and start is not None and duration >= 0:
                month = _month(start)
                self._month_seconds[month] = self._month_seconds.get(month, 0.0) + duration
            if was_active or not baseline:
                durations[key] = duration
                if status == "failed":
                    failed_now.append(key)
                else:
                    table.finished[("success", "none")] += 1
        if failed_now:
            logs = await self._reader.hmget_many(failed_now, ("logs",))
            for (log,) in logs:
                table.finished[("failed", self.categorize(log or ""))] += 1
        for duration in durations.values():
            if duration is not None and duration >= 0:
                self._agent_duration.observe(duration)

    async def _refresh_clusters(self, new_keys: list[str], *, baseline: bool) -> None:
        table = self._clusters
        keys = [*table.active, *new_keys]
        rows = await self._reader.hmget_many(keys, _CLUSTER_FIELDS)
        for key, (status, started, finished) in zip(keys, rows, strict=True):
            start, end = parse_timestamp(started), parse_timestamp(finished)
            if status is None:
                table.active.pop(key, None)
                continue
            if status in _ACTIVE or status not in table.statuses:
                table.active[key] = (status, start)
                continue
            was_active = table.active.pop(key, None) is not None
            table.terminal.add(key)
            table.terminal_counts[status] += 1
            if was_active or not baseline:
                outcome = "success" if status == table.success else "failed"
                table.finished[(outcome, "none")] += 1
                if start is not None and end is not None and end >= start:
                    self._cluster_duration.observe(end - start)

    def categorize(self, logs: str) -> str:
        """The failure category of a failed job's logs (first matching pattern, else ``other``)."""
        for category, pattern in self._patterns:
            if pattern.search(logs):
                return category
        return "other"

    def _render(self, newest: list[tuple[str, float] | None]) -> list[CollectedSample]:
        now = self._clock.time()
        out: list[CollectedSample] = []
        self._running_seconds_this_month = 0.0
        month_start = _month_start(now)
        for start in (s for st, s in self._agents.active.values() if st == "running"):
            if start is not None:
                self._running_seconds_this_month += max(0.0, now - max(start, month_start))
        out += _job_samples("soulcaster_agent", self._agents, now)
        out += _job_samples("soulcaster_cluster", self._clusters, now)
        for (outcome, category), n in sorted(self._agents.finished.items()):
            out.append(
                sample(
                    "soulcaster_agent_jobs_finished_total", n, outcome=outcome, category=category
                )
            )
        for (outcome, _), n in sorted(self._clusters.finished.items()):
            out.append(sample("soulcaster_cluster_jobs_finished_total", n, outcome=outcome))
        out += self._agent_duration.samples()
        out += self._cluster_duration.samples()
        for key, top in zip(sorted(self._reddit_keys), newest, strict=True):
            if top is not None:
                project = key.removeprefix("feedback:source:").removesuffix(":reddit")
                out.append(
                    sample(
                        "soulcaster_reddit_newest_item_timestamp_seconds",
                        top[1],
                        project_id=project,
                    )
                )
        return out


def _job_samples(prefix: str, table: _JobTable, now: float) -> list[CollectedSample]:
    counts: Counter[str] = Counter(table.terminal_counts)
    oldest: dict[str, float] = {}
    for status, start in table.active.values():
        counts[status] += 1
        if start is not None:
            oldest[status] = max(oldest.get(status, 0.0), now - start)
    out = [sample(f"{prefix}_jobs", counts[s], status=s) for s in table.statuses]
    out += [
        sample(f"{prefix}_job_oldest_age_seconds", oldest.get(s, 0.0), status=s)
        for s in ("pending", "running")
    ]
    return out


def _is_agent_key(key: str) -> bool:
    # `job:{id}` only: other keys that share the prefix (e.g. `job:{id}:events`) are not jobs.
    return key.count(":") == 1


def _month(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")


def _month_start(t: float) -> float:
    d = datetime.fromtimestamp(t, UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
