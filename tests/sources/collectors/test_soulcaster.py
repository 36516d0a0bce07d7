"""The Soulcaster collector against a real redis-server holding platform-shaped data."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
import redis

from soulwatch.clock import SimulatedClock
from soulwatch.sources.collectors import (
    RedisPyReader,
    SoulcasterCollector,
    SoulcasterCollectorConfig,
    UpstashRestReader,
)
from soulwatch.sources.collectors.base import CollectedSample
from tests.helpers import RecordedRequest, Recorder, RedisServer, Reply
from tests.sources.collectors.platform_data import NOW, iso, put_cluster_job, put_job


def values(samples: list[CollectedSample], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """``{labels-without-name: value}`` of one metric."""
    return {tuple(lbls.without_name()): v for lbls, v in samples if lbls.name == name}


def value(samples: list[CollectedSample], name: str, **labels: str) -> float | None:
    return values(samples, name).get(tuple(sorted(labels.items())))


@pytest.fixture
def client(redis_server: RedisServer) -> Iterator[Any]:
    c = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock(start=NOW)


@pytest.fixture
async def make(
    redis_server: RedisServer, clock: SimulatedClock
) -> AsyncIterator[Callable[..., SoulcasterCollector]]:
    """Builds collectors over redis-py readers, closed after the test."""
    readers: list[RedisPyReader] = []

    def build(**cfg: Any) -> SoulcasterCollector:
        readers.append(RedisPyReader(redis_server.url))
        return SoulcasterCollector(readers[-1], SoulcasterCollectorConfig(**cfg), clock=clock)

    yield build
    for reader in readers:
        await reader.aclose()


async def test_statuses_ages_and_finished_jobs_counted_once(
    redis_server: RedisServer,
    client: Any,
    clock: SimulatedClock,
    make: Callable[..., SoulcasterCollector],
) -> None:
    put_job(client, "old-ok", "success", created=NOW - 7200, updated=NOW - 7000)
    put_job(
        client, "old-bad", "failed", created=NOW - 7200, updated=NOW - 7100, logs="Linter error"
    )
    put_job(client, "stuck", "pending", created=NOW - 12 * 60)
    put_job(client, "long", "running", created=NOW - 20 * 60)
    collector = make()

    first = await collector.collect()
    assert value(first, "soulcaster_agent_jobs", status="pending") == 1
    assert value(first, "soulcaster_agent_jobs", status="running") == 1
    assert value(first, "soulcaster_agent_jobs", status="success") == 1
    assert value(first, "soulcaster_agent_jobs", status="failed") == 1
    assert value(first, "soulcaster_agent_job_oldest_age_seconds", status="pending") == 720
    assert value(first, "soulcaster_agent_job_oldest_age_seconds", status="running") == 1200
    # Jobs finished before the first sweep are the baseline, not counted as new;
    # every outcome and category starts at 0, so the first of each is an increase.
    baseline = values(first, "soulcaster_agent_jobs_finished_total")
    categories = {p.category for p in SoulcasterCollectorConfig().failure_patterns}
    assert baseline == {
        (("category", "none"), ("outcome", "success")): 0,
        (("category", "other"), ("outcome", "failed")): 0,
        **{(("category", c), ("outcome", "failed")): 0 for c in categories},
    }

    clock.set_time(NOW + 60)
    put_job(
        client,
        "long",
        "failed",
        created=NOW - 20 * 60,
        updated=NOW + 30,
        logs="step 3...\nSandbox timeout after 900 seconds",
    )
    put_job(
        client,
        "new",
        "failed",
        created=NOW + 10,
        updated=NOW + 50,
        logs="Agent script exited with code 1",
    )
    put_job(client, "shipped", "success", created=NOW, updated=NOW + 40)
    second = await collector.collect()
    finished = values(second, "soulcaster_agent_jobs_finished_total")
    assert {k: v for k, v in finished.items() if v} == {
        (("category", "agent_exit"), ("outcome", "failed")): 1,
        (("category", "sandbox_timeout"), ("outcome", "failed")): 1,
        (("category", "none"), ("outcome", "success")): 1,
    }
    assert finished.keys() == baseline.keys()
    assert value(second, "soulcaster_agent_jobs", status="running") == 0
    assert value(second, "soulcaster_agent_job_oldest_age_seconds", status="running") == 0
    # Durations of the jobs finished since the baseline: 1230 s, 40 s and 40 s.
    assert value(second, "soulcaster_agent_job_duration_seconds_count") == 3
    assert value(second, "soulcaster_agent_job_duration_seconds_bucket", le="60.0") == 2
    assert value(second, "soulcaster_agent_job_duration_seconds_bucket", le="900.0") == 2

    third = await collector.collect()
    assert values(third, "soulcaster_agent_jobs_finished_total") == finished


@pytest.mark.parametrize(
    ("logs", "category"),
    [
        ("Creating PR...\nPR creation failed: 422 Unprocessable Entity", "pr_creation_failed"),
        ("Sandbox timeout", "sandbox_timeout"),
        ("ruff: Linter error in app.py", "linter_error"),
        ("GitHub authentication required", "github_auth"),
        ("Agent script exited with code 137", "agent_exit"),
        ("something else broke", "other"),
    ],
)
async def test_failure_category_from_the_logs_the_runner_writes(
    client: Any, make: Callable[..., SoulcasterCollector], logs: str, category: str
) -> None:
    collector = make()
    await collector.collect()  # empty baseline sweep
    put_job(client, "j1", "failed", created=NOW - 100, updated=NOW - 10, logs=logs)
    samples = await collector.collect()
    finished = values(samples, "soulcaster_agent_jobs_finished_total")
    assert finished[(("category", category), ("outcome", "failed"))] == 1
    assert sum(finished.values()) == 1


async def test_cluster_jobs_and_reddit_newest_item(
    redis_server: RedisServer,
    client: Any,
    clock: SimulatedClock,
    make: Callable[..., SoulcasterCollector],
) -> None:
    put_cluster_job(client, "p1", "c1", "running", started=NOW - 300, finished=None)
    put_cluster_job(client, "p1", "c0", "succeeded", started=NOW - 900, finished=NOW - 800)
    client.zadd("feedback:source:p1:reddit", {"post-a": NOW - 5000, "post-b": NOW - 100})
    client.zadd("feedback:source:p2:reddit", {"post-c": NOW - 9000})
    collector = make()
    samples = await collector.collect()
    assert value(samples, "soulcaster_cluster_jobs", status="running") == 1
    assert value(samples, "soulcaster_cluster_jobs", status="succeeded") == 1
    assert value(samples, "soulcaster_cluster_job_oldest_age_seconds", status="running") == 300
    newest = values(samples, "soulcaster_reddit_newest_item_timestamp_seconds")
    assert newest == {(("project_id", "p1"),): NOW - 100, (("project_id", "p2"),): NOW - 9000}

    put_cluster_job(client, "p1", "c1", "failed", started=NOW - 300, finished=NOW + 5)
    samples = await collector.collect()
    assert values(samples, "soulcaster_cluster_jobs_finished_total") == {
        (("outcome", "failed"),): 1,
        (("outcome", "success"),): 0,
    }


class _CountingReader(RedisPyReader):
    """Counts how many job hashes each cycle reads."""

    hashes_read = 0

    async def hmget_many(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[str | None]]:
        self.hashes_read += len(keys)
        return await super().hmget_many(keys, fields)


async def test_cost_per_cycle_stays_bounded_with_ten_thousand_historical_jobs(
    redis_server: RedisServer, client: Any, clock: SimulatedClock
) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(10_000):
        put_job(
            pipe,
            f"h{i}",
            "success" if i % 4 else "failed",
            created=NOW - 86400 - i,
            updated=NOW - 86000 - i,
            logs="Linter error",
        )
    pipe.execute()
    put_job(client, "live", "running", created=NOW - 60)
    reader = _CountingReader(redis_server.url)
    collector = SoulcasterCollector(
        reader, SoulcasterCollectorConfig(scan_count=1000, scan_budget=20), clock=clock
    )
    first = await collector.collect()
    assert value(first, "soulcaster_agent_jobs", status="success") == 7500
    assert value(first, "soulcaster_agent_jobs", status="failed") == 2500
    assert value(first, "soulcaster_agent_jobs", status="running") == 1

    trips_before, hashes_before = reader.round_trips, reader.hashes_read
    await collector.collect()
    # Terminal jobs are never read again: only the one running job is refreshed,
    # and SCAN calls stay within budget (3 key patterns x 20) plus 3 pipelines.
    assert reader.hashes_read - hashes_before == 1
    assert reader.round_trips - trips_before <= 3 * 20 + 3
    await reader.aclose()


def _upstash_like(redis_url: str) -> Any:
    """A handler that answers Upstash REST ``/pipeline`` calls by running them on real Redis."""
    # RESP2 replies are what Upstash returns as JSON (flat arrays, strings).
    backend = redis.Redis.from_url(redis_url, decode_responses=True, protocol=2)

    def handle(req: RecordedRequest) -> Reply:
        if req.headers.get("authorization") != "Bearer tok":
            return Reply(401, b'{"error":"Unauthorized"}')
        import json

        results = []
        for command in req.json():
            try:
                results.append({"result": backend.execute_command(*command)})
            except redis.ResponseError as exc:
                results.append({"error": str(exc)})
        return Reply(200, json.dumps(results).encode(), {"Content-Type": "application/json"})

    return handle


async def test_upstash_rest_transport_reads_the_same_signals(
    redis_server: RedisServer, client: Any, clock: SimulatedClock
) -> None:
    put_job(client, "a", "running", created=NOW - 1000)
    put_job(client, "b", "pending", created=NOW - 30)
    client.zadd("feedback:source:p1:reddit", {"x": NOW - 42})
    with Recorder(handler=_upstash_like(redis_server.url)) as upstash:
        reader = UpstashRestReader(upstash.url, "tok")
        collector = SoulcasterCollector(reader, clock=clock)
        samples = await collector.collect()
        await reader.aclose()
    assert value(samples, "soulcaster_agent_jobs", status="running") == 1
    assert value(samples, "soulcaster_agent_job_oldest_age_seconds", status="running") == 1000
    assert value(samples, "soulcaster_reddit_newest_item_timestamp_seconds", project_id="p1") == (
        NOW - 42
    )
    assert all(r.path == "/pipeline" for r in upstash.requests)


async def test_sandbox_hours_this_month_from_job_durations(
    redis_server: RedisServer,
    client: Any,
    clock: SimulatedClock,
    make: Callable[..., SoulcasterCollector],
) -> None:
    # NOW is 2026-05-28: two finished jobs this month (1 h and 30 min), one last month
    # (not counted), one running for 30 min so far.
    put_job(client, "a", "success", created=NOW - 7200, updated=NOW - 3600)
    put_job(client, "b", "failed", created=NOW - 5000, updated=NOW - 3200)
    put_job(client, "old", "success", created=NOW - 40 * 86400, updated=NOW - 40 * 86400 + 3600)
    put_job(client, "c", "running", created=NOW - 1800)
    collector = make()
    await collector.collect()
    assert collector.sandbox_hours_this_month() == pytest.approx(1 + 0.5 + 0.5)


@pytest.fixture
def store(redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The Soulcaster-shaped backend's store, writing keys as the platform's store.py does."""
    from tests.soulcaster_app.store import RedisStore

    monkeypatch.setenv("REDIS_URL", redis_server.url)
    return RedisStore()


def _agent_job(job_id: str, status: str, created: float) -> dict[str, Any]:
    return {
        "id": job_id,
        "project_id": "proj-7",
        "cluster_id": "cluster-42",
        "status": status,
        "created_at": iso(created),
        "updated_at": iso(created),
    }


async def test_a_job_past_the_detail_threshold_is_named_and_steady_state_has_no_job_series(
    store: Any, clock: SimulatedClock, make: Callable[..., SoulcasterCollector]
) -> None:
    store.add_job(_agent_job("9b1d", "pending", NOW - 120))
    store.add_job(_agent_job("quick", "running", NOW - 60))
    collector = make()
    assert values(await collector.collect(), "soulcaster_agent_job_age_seconds") == {}

    clock.set_time(NOW + 500)
    ages = values(await collector.collect(), "soulcaster_agent_job_age_seconds")
    assert ages == {
        (
            ("cluster_id", "cluster-42"),
            ("job_id", "9b1d"),
            ("project_id", "proj-7"),
            ("status", "pending"),
        ): 620.0,
    }

    store.update_job("9b1d", status="running", updated_at=iso(NOW + 600))
    store.update_job("quick", status="success", updated_at=iso(NOW + 600))
    clock.set_time(NOW + 900)
    ages = values(await collector.collect(), "soulcaster_agent_job_age_seconds")
    assert [dict(k)["status"] for k in ages] == ["running"]

    store.update_job("9b1d", status="success", updated_at=iso(NOW + 900))
    assert values(await collector.collect(), "soulcaster_agent_job_age_seconds") == {}


async def test_at_most_the_limit_of_job_series_oldest_first(
    store: Any, clock: SimulatedClock, make: Callable[..., SoulcasterCollector]
) -> None:
    for i in range(5):
        store.add_job(_agent_job(f"j{i}", "running", NOW - 1000 - i))
    ages = values(await make(job_detail_limit=2).collect(), "soulcaster_agent_job_age_seconds")
    assert sorted(dict(k)["job_id"] for k in ages) == ["j3", "j4"]


async def test_job_gauges_follow_deletions(
    client: Any, clock: SimulatedClock, make: Callable[..., SoulcasterCollector]
) -> None:
    put_job(client, "a", "failed", created=NOW - 900, updated=NOW - 800)
    put_job(client, "b", "failed", created=NOW - 900, updated=NOW - 800)
    put_job(client, "c", "success", created=NOW - 900, updated=NOW - 800)
    put_cluster_job(client, "p1", "k1", "failed", started=NOW - 900, finished=NOW - 800)
    collector = make()
    first = await collector.collect()
    assert value(first, "soulcaster_agent_jobs", status="failed") == 2
    assert value(first, "soulcaster_cluster_jobs", status="failed") == 1

    client.delete("job:a")
    second = await collector.collect()
    assert value(second, "soulcaster_agent_jobs", status="failed") == 1
    assert value(second, "soulcaster_agent_jobs", status="success") == 1

    client.flushall()
    wiped = await collector.collect()
    assert value(wiped, "soulcaster_agent_jobs", status="failed") == 0
    assert value(wiped, "soulcaster_agent_jobs", status="success") == 0
    assert value(wiped, "soulcaster_cluster_jobs", status="failed") == 0


def _reddit_item(item_id: str, posted: float) -> dict[str, Any]:
    return {
        "id": item_id,
        "project_id": "proj-7",
        "source": "reddit",
        "external_id": f"t3_{item_id}",
        "title": "The CLI hangs",
        "body": "since the last release",
        "metadata": {"subreddit": "claudeai"},
        "created_at": iso(posted),
    }


async def test_reddit_lag_follows_ingest_time_not_post_age(
    store: Any, client: Any, clock: SimulatedClock, make: Callable[..., SoulcasterCollector]
) -> None:
    store.add_feedback_item(_reddit_item("a", posted=NOW - 5 * 3600))
    collector = make()
    first = await collector.collect()
    project = {(("project_id", "proj-7"),)}
    assert values(first, "soulcaster_reddit_last_ingest_timestamp_seconds") == {
        next(iter(project)): NOW
    }
    assert value(first, "soulcaster_reddit_newest_item_timestamp_seconds", project_id="proj-7") == (
        NOW - 5 * 3600
    )

    # A quiet subreddit: the poller ingests a post that is already 4 hours old.
    clock.set_time(NOW + 3 * 3600)
    store.add_feedback_item(_reddit_item("b", posted=NOW - 3600))
    grew = await collector.collect()
    assert value(grew, "soulcaster_reddit_last_ingest_timestamp_seconds", project_id="proj-7") == (
        NOW + 3 * 3600
    )
    assert value(grew, "soulcaster_reddit_items", project_id="proj-7") == 2

    # Nothing new: the ingest time stays where it was.
    clock.set_time(NOW + 4 * 3600)
    quiet = await collector.collect()
    assert value(quiet, "soulcaster_reddit_last_ingest_timestamp_seconds", project_id="proj-7") == (
        NOW + 3 * 3600
    )

    # The set disappears while the project still has subreddits configured.
    client.set("config:reddit:subreddits:proj-7", '["claudeai"]')
    client.delete("feedback:source:proj-7:reddit")
    gone = await collector.collect()
    assert values(gone, "soulcaster_reddit_last_ingest_timestamp_seconds") == {}
    assert values(gone, "soulcaster_reddit_subreddits_configured") == {
        (("project_id", "proj-7"),): 1.0
    }


async def test_the_last_failed_jobs_are_kept_for_alert_evidence(
    client: Any, make: Callable[..., SoulcasterCollector]
) -> None:
    collector = make()
    put_job(client, "old", "failed", created=NOW - 900, updated=NOW - 800, logs="baseline")
    await collector.collect()  # baseline: already failed before soulwatch looked
    long_logs = "step\n" * 2000 + "PR creation failed: 422 Validation Failed"
    for i in range(25):
        put_job(
            client, f"f{i:02d}", "failed", created=NOW - 100, updated=NOW - 50 + i, logs=long_logs
        )
    await collector.collect()
    kept = list(collector.recent_failures)
    assert [j.job_id for j in kept] == [f"f{i:02d}" for i in range(5, 25)]  # the 20 newest
    newest = kept[-1]
    assert newest.category == "pr_creation_failed"
    assert newest.project_id == "proj-1"
    assert newest.cluster_id == "cluster-f24"
    assert newest.logs_tail.endswith("PR creation failed: 422 Validation Failed")
    assert len(newest.logs_tail) <= 2000
    assert "old" not in {j.job_id for j in kept}
