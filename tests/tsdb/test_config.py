"""The storage settings model and the background maintenance loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB, run_maintenance
from soulwatch.tsdb.model import Labels

T0 = 1_700_000_000_000


def test_defaults_follow_prometheus() -> None:
    config = StorageConfig()
    assert config.retention_time == 15 * 24 * 3600
    assert config.retention_size is None
    assert config.chunk_samples == 120
    assert config.wal_fsync_interval == 1.0


@pytest.mark.parametrize(
    "bad",
    [{"retention_time": 0}, {"series_limit_total": -1}, {"chunk_samples": 1}, {"retension": 5}],
)
def test_invalid_settings_are_refused_with_the_field_named(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(bad))):
        StorageConfig.model_validate(bad)


def test_settings_come_from_yaml_like_data(tmp_path: Path) -> None:
    config = StorageConfig.model_validate(
        {"path": str(tmp_path), "retention_size": 10_000_000, "series_limit_per_source": 5000}
    )
    assert config.path == tmp_path
    assert config.series_limit_per_source == 5000


async def test_maintenance_runs_on_the_clock_off_the_event_loop(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(chunk_samples=10)
    app = db.appender()
    for i in range(25):
        app.append(Labels.of(__name__="m"), T0 + i * 1000, float(i))
    await asyncio.to_thread(app.commit)
    task = asyncio.create_task(run_maintenance(db, clock, interval=30))
    try:
        await clock.advance(29)
        assert db.stats().compactions == 0
        await clock.advance(1)
        for _ in range(200):  # the round runs in a worker thread; wait for it, bounded
            if db.stats().compactions:
                break
            await asyncio.sleep(0.01)
        assert db.stats().samples_persisted == 20  # two full chunks of 10
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
