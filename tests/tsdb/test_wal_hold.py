"""A WAL reader's hold keeps segments from deletion, within retention only."""

from __future__ import annotations

import time
from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels


def _segments(db: TSDB) -> list[int]:
    return sorted(int(p.name) for p in db.wal_directory.iterdir())


def _write_and_compact(db: TSDB, clock: SimulatedClock, rounds: int) -> None:
    for _ in range(rounds):
        app = db.appender()
        app.append(Labels.of(__name__="m"), int(clock.time() * 1000), 1.0)
        app.commit()
        db.maintain(force=True)
        clock.set_time(clock.time() + 10)


def test_held_segments_stay_until_released(tmp_path: Path) -> None:
    clock = SimulatedClock(start=time.time())
    with TSDB(StorageConfig(path=tmp_path), clock=clock) as db:
        release = db.hold_wal(lambda: 2)
        _write_and_compact(db, clock, 4)
        assert _segments(db)[0] == 2  # segment 1 was not needed; 2 and later are held
        release()
        _write_and_compact(db, clock, 1)
        assert _segments(db)[0] > 2


def test_a_hold_lapses_for_segments_older_than_retention(tmp_path: Path) -> None:
    clock = SimulatedClock(start=time.time())
    with TSDB(StorageConfig(path=tmp_path, retention_time=3600), clock=clock) as db:
        db.hold_wal(lambda: 1)  # a reader stuck at the very start (a receiver down for good)
        _write_and_compact(db, clock, 3)
        assert _segments(db)[0] == 1
        clock.set_time(clock.time() + 2 * 3600)  # the held segments' writes are past retention now
        _write_and_compact(db, clock, 1)
        assert _segments(db)[0] > 3
