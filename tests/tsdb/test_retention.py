"""Retention by time and by size, driven by the simulated clock."""

from __future__ import annotations

from collections.abc import Callable

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels, Matcher

T0 = 1_700_000_000_000
HOUR = 3_600_000


def _ingest(db: TSDB, clock: SimulatedClock, hours: int, step_ms: int = 60_000) -> None:
    """One sample a minute for `hours` hours of simulated time, maintaining every hour."""
    for minute in range(hours * HOUR // step_ms):
        t = T0 + minute * step_ms
        clock.set_time(t / 1000)
        app = db.appender(source="job/a")
        app.append(Labels.of(__name__="kept", job="a"), t, float(minute))
        if t < T0 + 6 * HOUR:  # this series stops after six hours
            app.append(Labels.of(__name__="gone", job="a"), t, float(minute))
        app.commit()
        if minute % 60 == 59:
            db.maintain()


def test_time_retention_drops_old_chunks_and_forgets_dead_series(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(retention_time=24 * 3600, chunk_samples=60, wal_fsync_interval=3600)
    _ingest(db, clock, hours=36)
    report = db.maintain()
    now = T0 + 36 * HOUR - 60_000
    cutoff = now - 24 * HOUR
    (kept,) = db.select([Matcher.equal("__name__", "kept")], 0, now)
    # Whole chunks go: the oldest kept sample is within one chunk (60 min) of the cutoff.
    assert cutoff - HOUR < kept.timestamps[0] <= cutoff
    assert kept.timestamps[-1] == now
    assert len(kept) == (now - kept.timestamps[0]) // 60_000 + 1  # nothing missing after it
    assert db.label_values("__name__") == ["kept"]  # "gone" had nothing left and was forgotten
    assert db.stats().retention_chunks_deleted >= 11
    assert report.size_bytes > 0

    db.close()
    reopened = open_db(retention_time=24 * 3600, chunk_samples=60, wal_fsync_interval=3600)
    assert reopened.label_values("__name__") == ["kept"]
    (again,) = reopened.select([Matcher.equal("__name__", "kept")], 0, now)
    assert again.timestamps == kept.timestamps


def test_head_samples_past_retention_are_dropped(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(retention_time=3600, head_max_age=10 * 3600)
    app = db.appender()
    lbls = Labels.of(__name__="m")
    for i in range(10):
        app.append(lbls, T0 + i * 600_000, float(i))  # every 10 minutes for 100 minutes
    app.commit()
    clock.set_time((T0 + 120 * 60_000) / 1000)  # 2 h: only minutes 60..90 are inside 1 h
    report = db.maintain()
    assert report.retention_head_samples_dropped == 6
    (series,) = db.select([Matcher.equal("__name__", "m")], 0, 2**62)
    assert series.values == [6.0, 7.0, 8.0, 9.0]


def test_size_retention_deletes_the_oldest_chunks_first(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(chunk_samples=60, wal_segment_max_bytes=4096, wal_fsync_interval=3600)
    names = [Labels.of(__name__="m", i=str(i)) for i in range(40)]
    for minute in range(24 * 60):
        t = T0 + minute * 60_000
        clock.set_time(t / 1000)
        app = db.appender()
        for lbls in names:
            app.append(lbls, t, float(minute * 7 % 13))
        app.commit()
        if minute % 60 == 59:
            db.maintain()
    db.maintain(force=True)
    full = db.size_bytes()
    db.close()

    limit = full * 6 // 10
    db = open_db(chunk_samples=60, retention_size=limit)
    report = db.maintain()
    assert report.retention_chunks_deleted > 0
    assert report.size_bytes <= limit
    for series in db.select([Matcher.equal("__name__", "m")], 0, 2**62):
        assert series.timestamps[-1] == T0 + 24 * HOUR - 60_000  # the newest data survives
        assert series.timestamps[0] > T0 + 4 * HOUR  # the oldest went
