"""The Soulcaster collector: job and ingest signals read from the platform's Redis as it is.

No change to the platform is needed. It reads the keys ``backend/store.py``
writes:

* agent jobs, hashes ``job:{id}`` (``status`` pending|running|success|failed,
  ``project_id``, ``cluster_id``, ``created_at``, ``updated_at``, ``logs``...);
* cluster jobs, hashes ``cluster_job:{project_id}:{job_id}`` (``status``
  pending|running|succeeded|failed, ``started_at``, ``finished_at``, ``error``);
* Reddit items, sorted sets ``feedback:source:{project_id}:reddit``. Their
  score is the *post's* time (``created_utc``), so a quiet subreddit looks
  old while the poller is fine: ingestion is measured instead as the moment
  the collector last saw a set grow;
* the projects that configured subreddits, ``config:reddit:subreddits:{project_id}``,
  so that a configured project with no Reddit set at all is seen.

Cost stays bounded as history grows: keys are discovered with ``SCAN`` (never
``KEYS``) under a per-cycle budget, the cursor carrying over to the next
cycle; a job seen in a terminal state is never read again; only pending and
running jobs are re-read each cycle, in one pipelined round trip. A finished
job whose key a complete sweep no longer finds is forgotten, so the job gauges
follow deletions (a wiped database counts zero).

Finished jobs are counted once each. Jobs already finished when the collector
first sweeps the keyspace are the baseline and are not counted, so a restart
of soulwatch does not make ``rate()`` see every historical job at once.

A job that has been pending or running longer than ``job_detail_after_seconds``
also gets its own ``soulcaster_agent_job_age_seconds{job_id,project_id,cluster_id}``
series, so an alert can name it; in steady state no such series exists.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from soulwatch.clock import Clock, SystemClock
from soulwatch.sources.collectors.base import CollectedSample, Histogram, parse_timestamp, sample
from soulwatch.sources.collectors.config import SoulcasterCollectorConfig
from soulwatch.sources.collectors.redis_reader import RedisReader

AGENT_STATUSES = ("pending", "running", "success", "failed")
CLUSTER_STATUSES = ("pending", "running", "succeeded", "failed")
_ACTIVE = frozenset({"pending", "running"})
_AGENT_FIELDS = ("status", "created_at", "updated_at", "project_id", "cluster_id")
_CLUSTER_FIELDS = ("status", "started_at", "finished_at")
_REDDIT_PREFIX, _REDDIT_SUFFIX = "feedback:source:", ":reddit"
_SUBREDDITS_PREFIX = "config:reddit:subreddits:"


RECENT_FAILURES = 20
"""How many failed agent jobs the collector remembers for alert evidence."""
_LOGS_TAIL = 2000


@dataclass(frozen=True)
class FailedJob:
    """A failed agent job as last seen: what an alert about failures can show."""

    job_id: str
    category: str
    finished_at: float | None
    project_id: str
    cluster_id: str
    logs_tail: str


@dataclass
class _Sweep:
    """A SCAN over one key pattern that carries its cursor across cycles."""

    match: str
    cursor: int = 0
    passes: int = 0
    _seen: set[str] = field(default_factory=set)

    async def step(
        self, reader: RedisReader, count: int, budget: int
    ) -> tuple[list[str], set[str] | None]:
        """Keys found this cycle, and every key of the pass if this cycle completed one.

        SCAN returns every key that exists for the whole pass, so a known key
        missing from a complete pass has been deleted.
        """
        found: list[str] = []
        completed: set[str] | None = None
        for _ in range(budget):
            self.cursor, keys = await reader.scan(self.cursor, self.match, count)
            found.extend(keys)
            self._seen.update(keys)
            if self.cursor == 0:
                self.passes += 1
                completed, self._seen = self._seen, set()
                break
        return found, completed


@dataclass
class _Active:
    """A pending or running job: its status, start, and where it belongs."""

    status: str
    start: float | None
    project_id: str = ""
    cluster_id: str = ""


@dataclass
class _JobTable:
    """What is known of one kind of job (agent or cluster)."""

    statuses: tuple[str, ...]
    success: str
    active: dict[str, _Active] = field(default_factory=dict)
    #: Jobs in a terminal state, by key, with that state (never re-read).
    terminal: dict[str, str] = field(default_factory=dict)
    terminal_counts: Counter[str] = field(default_factory=Counter)
    finished: Counter[tuple[str, str]] = field(default_factory=Counter)

    def known(self, key: str) -> bool:
        return key in self.terminal or key in self.active

    def finish(self, key: str, status: str) -> None:
        self.terminal[key] = status
        self.terminal_counts[status] += 1

    def forget_missing(self, existing: set[str]) -> None:
        """Drop the terminal jobs whose keys a complete sweep did not find."""
        for key in [k for k in self.terminal if k not in existing]:
            self.terminal_counts[self.terminal.pop(key)] -= 1


@dataclass
class _RedditSet:
    """One project's Reddit set: its size and when it was last seen to grow."""

    size: int
    grew_at: float


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
        self._reddit_sweep = _Sweep(f"{_REDDIT_PREFIX}*{_REDDIT_SUFFIX}")
        self._subreddits_sweep = _Sweep(f"{_SUBREDDITS_PREFIX}*")
        self._agents = _JobTable(AGENT_STATUSES, "success")
        self._clusters = _JobTable(CLUSTER_STATUSES, "succeeded")
        self._agent_duration = Histogram(
            "soulcaster_agent_job_duration_seconds", self.config.duration_buckets
        )
        self._cluster_duration = Histogram(
            "soulcaster_cluster_job_duration_seconds", self.config.duration_buckets
        )
        self._reddit: dict[str, _RedditSet] = {}
        self._reddit_keys: set[str] = set()
        self._configured: set[str] = set()
        self._month_seconds: dict[str, float] = {}
        self._running_seconds_this_month = 0.0
        #: The last failed agent jobs, oldest first (bounded; read by alert evidence).
        self.recent_failures: deque[FailedJob] = deque(maxlen=RECENT_FAILURES)

    async def aclose(self) -> None:
        """Close the Redis client (the collector's source calls it when it stops)."""
        await self._reader.aclose()

    def sandbox_hours_this_month(self) -> float:
        """Agent-job hours in the current UTC month: finished jobs plus running ones so far."""
        month = _month(self._clock.time())
        return (self._month_seconds.get(month, 0.0) + self._running_seconds_this_month) / 3600.0

    async def collect(self) -> list[CollectedSample]:
        """One cycle: discover keys under budget, refresh active jobs, render the samples."""
        cfg = self.config
        count, budget = cfg.scan_count, cfg.scan_budget
        # Jobs found finished during the first full sweep are the baseline.
        agent_baseline = self._agent_sweep.passes == 0
        cluster_baseline = self._cluster_sweep.passes == 0
        found, complete = await self._agent_sweep.step(self._reader, count, budget)
        new_agents = [k for k in found if _is_agent_key(k) and not self._agents.known(k)]
        if complete is not None:
            self._agents.forget_missing(complete)
        found, complete = await self._cluster_sweep.step(self._reader, count, budget)
        new_clusters = [k for k in found if not self._clusters.known(k)]
        if complete is not None:
            self._clusters.forget_missing(complete)
        found, complete = await self._reddit_sweep.step(self._reader, count, budget)
        self._reddit_keys.update(found)
        found, complete = await self._subreddits_sweep.step(self._reader, count, budget)
        self._configured.update(k.removeprefix(_SUBREDDITS_PREFIX) for k in found)
        if complete is not None:
            self._configured = {k.removeprefix(_SUBREDDITS_PREFIX) for k in complete}
        await self._refresh_agents(new_agents, baseline=agent_baseline)
        await self._refresh_clusters(new_clusters, baseline=cluster_baseline)
        keys = sorted(self._reddit_keys)
        sizes = await self._reader.zcard_many(keys)
        newest = await self._reader.zrevrange_top(keys)
        self._track_reddit(keys, sizes)
        return self._render(dict(zip(keys, newest, strict=True)))

    def _track_reddit(self, keys: list[str], sizes: list[int]) -> None:
        now = self._clock.time()
        for key, size in zip(keys, sizes, strict=True):
            known = self._reddit.get(key)
            if size == 0:  # the set is gone (ZCARD of a missing key is 0)
                self._reddit.pop(key, None)
                self._reddit_keys.discard(key)
            elif known is None:
                # Items already there were ingested at some unknown time: count from now.
                self._reddit[key] = _RedditSet(size, now)
            elif size > known.size:
                known.size, known.grew_at = size, now
            else:
                known.size = size  # a deletion is not an ingestion

    async def _refresh_agents(self, new_keys: list[str], *, baseline: bool) -> None:
        table = self._agents
        keys = [*table.active, *new_keys]
        rows = await self._reader.hmget_many(keys, _AGENT_FIELDS)
        failed_now: list[str] = []
        durations: dict[str, float | None] = {}
        for key, (status, created, updated, project, cluster) in zip(keys, rows, strict=True):
            start, end = parse_timestamp(created), parse_timestamp(updated)
            if status is None:  # the key is gone
                table.active.pop(key, None)
                continue
            if status in _ACTIVE or status not in table.statuses:
                table.active[key] = _Active(status, start, project or "", cluster or "")
                continue
            was_active = table.active.pop(key, None) is not None
            table.finish(key, status)
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
            rows = await self._reader.hmget_many(
                failed_now, ("logs", "updated_at", "project_id", "cluster_id")
            )
            failures: list[FailedJob] = []
            for key, (log, updated, project, cluster) in zip(failed_now, rows, strict=True):
                category = self.categorize(log or "")
                table.finished[("failed", category)] += 1
                failures.append(
                    FailedJob(
                        key.removeprefix("job:"),
                        category,
                        parse_timestamp(updated),
                        project or "",
                        cluster or "",
                        (log or "")[-_LOGS_TAIL:],
                    )
                )
            # SCAN order is arbitrary: oldest first, so the bounded deque keeps the newest.
            failures.sort(key=lambda j: j.finished_at or 0.0)
            self.recent_failures.extend(failures)
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
                table.active[key] = _Active(status, start)
                continue
            was_active = table.active.pop(key, None) is not None
            table.finish(key, status)
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

    def _render(self, newest: dict[str, tuple[str, float] | None]) -> list[CollectedSample]:
        now = self._clock.time()
        out: list[CollectedSample] = []
        self._running_seconds_this_month = 0.0
        month_start = _month_start(now)
        for job in self._agents.active.values():
            if job.status == "running" and job.start is not None:
                self._running_seconds_this_month += max(0.0, now - max(job.start, month_start))
        out += _job_samples("soulcaster_agent", self._agents, now)
        out += _job_samples("soulcaster_cluster", self._clusters, now)
        out += self._job_details(now)
        # Every outcome and category is written from the first cycle, at 0 until it
        # happens, so rate() and increase() see the first failure of each (a counter
        # that appears at 1 shows no increase).
        agents = Counter({("success", "none"): 0, ("failed", "other"): 0})
        agents.update({("failed", category): 0 for category, _ in self._patterns})
        agents.update(self._agents.finished)
        for (outcome, category), n in sorted(agents.items()):
            out.append(
                sample(
                    "soulcaster_agent_jobs_finished_total", n, outcome=outcome, category=category
                )
            )
        clusters: Counter[str] = Counter({"success": 0, "failed": 0})
        for (outcome, _), n in self._clusters.finished.items():
            clusters[outcome] += n
        for outcome, n in sorted(clusters.items()):
            out.append(sample("soulcaster_cluster_jobs_finished_total", n, outcome=outcome))
        out += self._agent_duration.samples()
        out += self._cluster_duration.samples()
        for key, state in sorted(self._reddit.items()):
            project = key.removeprefix(_REDDIT_PREFIX).removesuffix(_REDDIT_SUFFIX)
            out.append(
                sample(
                    "soulcaster_reddit_last_ingest_timestamp_seconds",
                    state.grew_at,
                    project_id=project,
                )
            )
            out.append(sample("soulcaster_reddit_items", state.size, project_id=project))
            top = newest.get(key)
            if top is not None:
                out.append(
                    sample(
                        "soulcaster_reddit_newest_item_timestamp_seconds",
                        top[1],
                        project_id=project,
                    )
                )
        for project in sorted(self._configured):
            out.append(sample("soulcaster_reddit_subreddits_configured", 1, project_id=project))
        return out

    def _job_details(self, now: float) -> list[CollectedSample]:
        """One age series per agent job pending or running past the detail threshold."""
        after = self.config.job_detail_after_seconds
        old = [
            (now - job.start, key, job)
            for key, job in self._agents.active.items()
            if job.status in _ACTIVE and job.start is not None and now - job.start >= after
        ]
        old.sort(key=lambda item: (-item[0], item[1]))
        return [
            sample(
                "soulcaster_agent_job_age_seconds",
                age,
                job_id=key.removeprefix("job:"),
                project_id=job.project_id,
                cluster_id=job.cluster_id,
                status=job.status,
            )
            for age, key, job in old[: self.config.job_detail_limit]
        ]


def _job_samples(prefix: str, table: _JobTable, now: float) -> list[CollectedSample]:
    counts: Counter[str] = Counter(table.terminal_counts)
    oldest: dict[str, float] = {}
    for job in table.active.values():
        counts[job.status] += 1
        if job.start is not None:
            oldest[job.status] = max(oldest.get(job.status, 0.0), now - job.start)
    out = [sample(f"{prefix}_jobs", counts[s], status=s) for s in table.statuses]
    out += [
        sample(f"{prefix}_job_oldest_age_seconds", oldest.get(s, 0.0), status=s)
        for s in ("pending", "running")
    ]
    return out


def _is_agent_key(key: str) -> bool:
    # `job:{id}` only: other keys that share the prefix (e.g. `job:{id}:logs`) are not jobs.
    return key.count(":") == 1


def _month(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m")


def _month_start(t: float) -> float:
    d = datetime.fromtimestamp(t, UTC)
    return datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
