"""A selection's matching series are remembered between queries, never stale.

Rule evaluation selects the same series every cycle, so the TSDB keeps each
matcher set's sorted series until the index changes. These tests change the
index between two identical selections and check the second one sees it.
"""

from __future__ import annotations

from collections.abc import Callable

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels, Matcher

T0 = 1_700_000_000_000
HOUR = 3_600_000

_JOB_A = [Matcher.equal("job", "a")]


def _names(db: TSDB, mint: int, maxt: int) -> list[str]:
    return [str(s.labels.get("instance")) for s in db.select_arrays(_JOB_A, mint, maxt)]


def test_a_new_series_appears_in_the_next_identical_selection(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    app = db.appender()
    app.append(Labels.of(__name__="up", job="a", instance="m"), T0, 1.0)
    app.append(Labels.of(__name__="up", job="b", instance="z"), T0, 1.0)
    app.commit()
    assert _names(db, T0, T0) == ["m"]
    app = db.appender()
    # Sorts before and after the remembered one.
    app.append(Labels.of(__name__="up", job="a", instance="c"), T0 + 1, 2.0)
    app.append(Labels.of(__name__="up", job="a", instance="x"), T0 + 1, 3.0)
    app.commit()
    assert _names(db, T0, T0 + 1) == ["c", "m", "x"]
    # New samples of known series need no new lookup, and are seen.
    app = db.appender()
    app.append(Labels.of(__name__="up", job="a", instance="m"), T0 + 2, 5.0)
    app.commit()
    selected = db.select_arrays(_JOB_A, T0, T0 + 2)
    found = {s.labels.get("instance"): s.values.tolist() for s in selected}
    assert found == {"c": [2.0], "m": [1.0, 5.0], "x": [3.0]}


def test_a_series_forgotten_by_retention_leaves_the_selection(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(retention_time=3600, chunk_samples=10)
    for minute in range(0, 180):
        t = T0 + minute * 60_000
        clock.set_time(t / 1000)
        app = db.appender()
        app.append(Labels.of(__name__="up", job="a", instance="kept"), t, 1.0)
        if minute < 30:
            app.append(Labels.of(__name__="up", job="a", instance="gone"), t, 1.0)
        app.commit()
        if minute == 20:
            assert _names(db, T0, t) == ["gone", "kept"]
        if minute % 30 == 29:
            db.maintain()
    now = T0 + 179 * 60_000
    assert db.label_values("instance") == ["kept"]
    assert _names(db, 0, now) == ["kept"]
    assert [s.labels.get("instance") for s in db.select(_JOB_A, 0, now)] == ["kept"]
