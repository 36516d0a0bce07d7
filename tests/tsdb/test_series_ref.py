"""The appender's series-reference fast path stores exactly what ``append`` would."""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Callable
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.errors import DuplicateSampleError, OutOfOrderSampleError, RejectReason
from soulwatch.tsdb.model import Labels, Matcher
from soulwatch.tsdb.storage import RefAppender

T0 = 1_700_000_000_000
HOUR = 3_600_000
A = Labels.of(__name__="req", job="api", code="200")
B = Labels.of(__name__="req", job="api", code="500")


def _samples(db: TSDB, labels: Labels) -> list[tuple[int, float]]:
    matchers = [Matcher.equal(n, v) for n, v in labels]
    return [(t, v) for s in db.select(matchers, 0, 2**62) for t, v in s]


def test_refs_are_series_ids_once_committed_and_route_samples_to_their_series(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    app = db.appender("job/api")
    assert isinstance(app, RefAppender)
    # New series: no ref until the commit creates them.
    assert app.append_ref(0, A, T0, 1.0) == 0
    assert app.append_ref(0, B, T0, 10.0) == 0
    app.commit()
    ref_a = app.append_ref(0, A, T0 + 15_000, 2.0)
    ref_b = app.append_ref(0, B, T0 + 15_000, 20.0)
    assert ref_a > 0
    assert ref_b > 0
    assert ref_a != ref_b
    app.commit()
    for step in range(2, 5):
        t = T0 + step * 15_000
        assert app.append_ref(ref_a, A, t, float(step + 1)) == ref_a
        assert app.append_ref(ref_b, B, t, float(10 * (step + 1))) == ref_b
        app.commit()
    assert _samples(db, A) == [(T0 + i * 15_000, float(i + 1)) for i in range(5)]
    assert _samples(db, B) == [(T0 + i * 15_000, float(10 * (i + 1))) for i in range(5)]
    assert db.stats().series_created == 2


def test_a_ref_keeps_the_out_of_order_and_duplicate_checks(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    app = db.appender(strict=True)
    app.append(A, T0, 1.0)
    app.commit()
    ref = app.append_ref(0, A, T0 + 15_000, 2.0)
    assert app.append_ref(ref, A, T0 + 15_000, 2.0) == ref  # the same sample again: ignored
    with pytest.raises(DuplicateSampleError):
        app.append_ref(ref, A, T0 + 15_000, 3.0)
    app.commit()
    with pytest.raises(OutOfOrderSampleError):
        app.append_ref(ref, A, T0 + 5_000, 4.0)
    app.commit()
    assert _samples(db, A) == [(T0, 1.0), (T0 + 15_000, 2.0)]
    assert db.stats().samples_rejected == {
        RejectReason.DUPLICATE_TIMESTAMP: 1,
        RejectReason.OUT_OF_ORDER: 1,
    }


def test_a_ref_to_a_series_removed_by_retention_falls_back_to_its_labels(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(retention_time=3600, chunk_samples=10)
    clock.set_time(T0 / 1000)
    app = db.appender()
    app.append(A, T0, 1.0)
    app.commit()
    stale = app.append_ref(0, A, T0 + 1_000, 2.0)
    app.commit()
    # Two hours later the series has nothing within retention and is forgotten.
    clock.set_time((T0 + 2 * HOUR) / 1000)
    db.maintain(force=True)
    db.maintain()
    assert db.label_values("__name__") == []
    # Another series now exists; the old ref must not send A's sample anywhere else.
    app = db.appender()
    app.append(B, T0 + 2 * HOUR, 5.0)
    app.commit()
    assert app.append_ref(stale, A, T0 + 2 * HOUR, 7.0) == 0  # new again: created at commit
    app.commit()
    assert _samples(db, A) == [(T0 + 2 * HOUR, 7.0)]
    assert _samples(db, B) == [(T0 + 2 * HOUR, 5.0)]


C = Labels.of(__name__="req", job="api", code="404")


def _feed(db: TSDB, batched: bool) -> list[object]:
    """The same scrapes through ``append_batch`` or ``append_ref`` per sample; what each saw."""
    seen: list[object] = []
    refs = [0, 0, 0]
    app = db.appender("job/api")
    steps = [
        (T0, [1.0, 2.0, 3.0]),  # new series: no refs yet
        (T0 + 15_000, [2.0, 3.0, 4.0]),  # refs from the lookup
        (T0 + 30_000, [3.0, 4.0, 5.0]),  # steady: every ref valid
        (T0 + 30_000, [3.0, 9.0, 5.0]),  # the same time again: one value differs
        (T0 + 20_000, [1.0, 1.0, 1.0]),  # older than what is stored
        (T0 + 45_000, [math.nan, math.inf, -0.0]),
    ]
    for t, values in steps:
        if batched:
            refs = app.append_batch(refs, [A, B, C], t, array("d", values))
        else:
            refs = [
                app.append_ref(ref, labels, t, v)
                for ref, labels, v in zip(refs, [A, B, C], values, strict=True)
            ]
        seen.append(list(refs))
        if t == T0 + 45_000:
            # a later sample in the same batch is still checked against the batch's
            app.append(A, T0 + 45_000, 8.0)
            app.append(C, T0 + 50_000, 8.0)
        app.commit()
        seen.append([(r.labels, r.t_ms, r.reason) for r in app.rejected])
    return seen


def test_a_batch_stores_and_refuses_what_sample_by_sample_appends_do(
    open_db: Callable[..., TSDB], tmp_path: Path
) -> None:
    by_sample = open_db(path=tmp_path / "one")
    batched = open_db(path=tmp_path / "batch")
    assert _feed(by_sample, False) == _feed(batched, True)
    for labels in (A, B, C):
        got = [(t, struct.pack("<d", v)) for t, v in _samples(batched, labels)]
        assert got == [(t, struct.pack("<d", v)) for t, v in _samples(by_sample, labels)]
    assert [v for _, v in _samples(batched, C)] == [3.0, 4.0, 5.0, -0.0, 8.0]
    assert batched.stats().samples_rejected == by_sample.stats().samples_rejected
    assert batched.stats().samples_rejected == {
        RejectReason.DUPLICATE_TIMESTAMP: 2,
        RejectReason.OUT_OF_ORDER: 3,
    }
    by_sample.close()
    batched.close()
    # the WAL holds the same samples: a restart replays them alike
    again = open_db(path=tmp_path / "batch")
    assert [v for _, v in _samples(again, B)][:3] == [2.0, 3.0, 4.0]
    assert again.replay.samples_replayed == open_db(path=tmp_path / "one").replay.samples_replayed


def test_a_strict_batch_raises_where_the_sample_by_sample_path_does(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    app = db.appender(strict=True)
    refs = app.append_batch([0, 0], [A, B], T0, array("d", [1.0, 2.0]))
    app.commit()
    refs = app.append_batch(refs, [A, B], T0 + 15_000, array("d", [1.0, 2.0]))
    app.commit()
    with pytest.raises(DuplicateSampleError):
        app.append_batch(refs, [A, B], T0 + 15_000, array("d", [1.0, 5.0]))
    with pytest.raises(ValueError, match="as many"):
        app.append_batch(refs, [A], T0 + 30_000, array("d", [1.0, 5.0]))
