"""A collector on a schedule writes like a scrape: job labels, up, staleness on failure."""

from __future__ import annotations

from soulwatch.sources.base import Health
from soulwatch.sources.collectors.base import CollectedSample, sample
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Matcher, is_stale_nan


class _Flaky:
    name = "soulcaster"

    def __init__(self) -> None:
        self.fail = False
        self.extra = True

    async def collect(self) -> list[CollectedSample]:
        if self.fail:
            raise ConnectionError("Connection refused")
        out = [sample("soulcaster_agent_jobs", 3, status="running")]
        if self.extra:
            out.append(sample("soulcaster_agent_jobs", 1, status="pending"))
        return out

    async def aclose(self) -> None:
        return None


def _points(store: MemoryStorage, name: str, **labels: str) -> list[tuple[int, float]]:
    matchers = [Matcher.equal("__name__", name)] + [Matcher.equal(k, v) for k, v in labels.items()]
    (series,) = list(store.select(matchers, 0, 10**13))
    return list(series)


async def test_samples_get_job_labels_up_and_staleness() -> None:
    store = MemoryStorage()
    flaky = _Flaky()
    source = CollectorSource(flaky, store, interval=15)
    await source.run_once(1000.0)
    flaky.extra = False
    await source.run_once(1015.0)
    flaky.fail = True
    await source.run_once(1030.0)

    running = _points(
        store, "soulcaster_agent_jobs", status="running", job="soulcaster", instance="collector"
    )
    assert [p for p in running if not is_stale_nan(p[1])] == [(1_000_000, 3.0), (1_015_000, 3.0)]
    assert is_stale_nan(running[-1][1])
    assert running[-1][0] == 1_030_000
    pending = _points(store, "soulcaster_agent_jobs", status="pending")
    assert pending[0] == (1_000_000, 1.0)
    assert pending[1][0] == 1_015_000
    assert is_stale_nan(pending[1][1])
    assert _points(store, "up", job="soulcaster") == [
        (1_000_000, 1.0),
        (1_015_000, 1.0),
        (1_030_000, 0.0),
    ]
    assert source.status.health is Health.DOWN
    assert source.status.last_error == "ConnectionError: Connection refused"
