"""Applying a new scrape config: unchanged jobs run on, removed ones go stale, new ones start."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import ConfigError
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import is_stale_nan
from tests.helpers import UvicornThread
from tests.sources.support import Exposition, metrics_app, only

BODY = "# TYPE temperature gauge\ntemperature 21.5\n"


@pytest.fixture
def server() -> Iterator[UvicornThread]:
    with UvicornThread(metrics_app(metrics=Exposition(BODY))) as srv:
        yield srv


def job(name: str, port: int, **kwargs: object) -> ScrapeConfig:
    cfg = ScrapeConfig.model_validate(
        {
            "job_name": name,
            "scrape_interval": "15s",
            "scrape_timeout": "2s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
            **kwargs,
        }
    )
    return cfg.resolved()


async def ticks(clock: SimulatedClock, manager: ScrapeManager, n: int) -> None:
    for _ in range(n):
        await clock.advance(15)
        await manager.settled()


def contiguous(samples: list[tuple[int, float]]) -> bool:
    """No staleness marker and no missed scrape (every 15s)."""
    times = [t for t, _ in samples]
    return all(not is_stale_nan(v) for _, v in samples) and all(
        b - a == 15_000 for a, b in itertools.pairwise(times)
    )


async def test_adding_a_job_keeps_the_running_one_contiguous(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job("api", server.port)], storage, clock=clock)
    manager.start()
    try:
        await ticks(clock, manager, 3)
        [api_target] = manager.targets
        reload = manager.prepare([job("api", server.port), job("worker", server.port)])
        assert (reload.kept, reload.added, reload.removed) == (["api"], ["worker"], [])
        await manager.apply(reload)
        await ticks(clock, manager, 4)
        assert manager.targets[0] is api_target  # the same loop, never restarted
    finally:
        await manager.stop()
    up = only(storage, "up", job="api")
    # 7 scrapes on the same 15s phase; the stop at the end writes the only marker.
    assert len(up) == 8
    assert contiguous(up[:-1])
    assert is_stale_nan(up[-1][1])
    temperature = only(storage, "temperature", job="api")[:-1]
    assert contiguous(temperature)
    assert [v for _, v in temperature] == [21.5] * 7
    worker = only(storage, "up", job="worker")
    assert [v for _, v in worker[:-1]] == [1.0] * 4


async def test_a_removed_job_goes_stale_and_a_changed_one_restarts(
    clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager(
        [job("api", server.port), job("worker", server.port), job("batch", server.port)],
        storage,
        clock=clock,
    )
    manager.start()
    try:
        await ticks(clock, manager, 2)
        reload = manager.prepare(
            [job("api", server.port), job("batch", server.port, scrape_interval="30s")]
        )
        assert (reload.kept, reload.added, reload.removed) == (
            ["api"],
            ["batch"],
            ["worker", "batch"],
        )
        applied_at = clock.time()
        await manager.apply(reload)
        # Stopped at once: the marker is written when the job goes, not later.
        worker = only(storage, "up", job="worker")
        assert is_stale_nan(worker[-1][1])
        assert worker[-1][0] >= int(applied_at * 1000)
        await ticks(clock, manager, 4)
        assert only(storage, "up", job="worker") == worker  # nothing after the marker
        assert contiguous(only(storage, "up", job="api"))
        batch = only(storage, "up", job="batch")
        stale = [i for i, (_, v) in enumerate(batch) if is_stale_nan(v)]
        assert len(stale) == 1  # restarted with the new interval
        after = [t for t, _ in batch[stale[0] + 1 :]]
        assert len(after) >= 2
        assert all(b - a == 30_000 for a, b in itertools.pairwise(after))
    finally:
        await manager.stop()


async def test_a_failed_prepare_changes_nothing(
    tmp_path: Path, clock: SimulatedClock, server: UvicornThread
) -> None:
    storage = MemoryStorage()
    manager = ScrapeManager([job("api", server.port)], storage, clock=clock)
    manager.start()
    try:
        await ticks(clock, manager, 2)
        missing = tmp_path / "nope"
        bad = job(
            "worker", server.port, basic_auth={"username": "u", "password_file": str(missing)}
        )
        with pytest.raises(ConfigError, match="password_file"):
            manager.prepare([job("api", server.port), bad])
        await ticks(clock, manager, 2)
        assert [t.labels.get("job") for t in manager.targets] == ["api"]
        assert contiguous(only(storage, "up", job="api"))
        assert len(only(storage, "up", job="api")) == 4
    finally:
        await manager.stop()


async def test_a_rotated_credentials_file_restarts_its_job(
    tmp_path: Path, clock: SimulatedClock, server: UvicornThread
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("one")
    auth = {"username": "u", "password_file": str(secret)}
    manager = ScrapeManager(
        [job("api", server.port, basic_auth=auth)], MemoryStorage(), clock=clock
    )
    try:
        same = manager.prepare([job("api", server.port, basic_auth=auth)])
        assert (same.kept, same.added) == (["api"], [])
        await manager.discard(same)
        secret.write_text("two")
        rotated = manager.prepare([job("api", server.port, basic_auth=auth)])
        assert (rotated.kept, rotated.added, rotated.removed) == ([], ["api"], ["api"])
        await manager.discard(rotated)
    finally:
        await manager.stop()
