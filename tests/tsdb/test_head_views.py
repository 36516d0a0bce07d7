"""A selection of head samples is a read-only view of the head's own buffers, not a copy,
and it stays true however much is appended, cut into chunks or dropped after it."""

from __future__ import annotations

import math
import random
import struct
import threading
from collections.abc import Callable

import numpy as np
import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, ArraySeries, Labels, Matcher
from tests.tsdb.test_db import T0, _load, _workload

NAME = [Matcher.equal("__name__", "m")]
FAR = T0 + 10**10


def _labels(i: int) -> Labels:
    return Labels.of(__name__="m", i=str(i))


def _append(db: TSDB, series: int, first_step: int, steps: int) -> None:
    for step in range(first_step, first_step + steps):
        app = db.appender()
        for i in range(series):
            app.append(_labels(i), T0 + step * 1000, float(step * 10 + i))
        app.commit()


def _copied(selected: list[ArraySeries]) -> list[tuple[Labels, list[int], list[float]]]:
    return [(s.labels, s.timestamps.tolist(), list(s.values)) for s in selected]


def _expected(series: int, steps: int) -> list[tuple[Labels, list[int], list[float]]]:
    out = []
    for i in sorted(range(series), key=_labels):
        ts = [T0 + step * 1000 for step in range(steps)]
        out.append((_labels(i), ts, [float(step * 10 + i) for step in range(steps)]))
    return out


def test_a_held_selection_stays_true_while_thousands_of_samples_are_appended(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db()
    _append(db, series=5, first_step=0, steps=50)
    held = list(db.select_arrays(NAME, T0, FAR))
    assert _copied(held) == _expected(5, 50)
    # Thousands of appends while the views are held (the head's buffers grow many
    # times over), with chunks cut and head samples dropped along the way.
    for round_ in range(10):
        _append(db, series=5, first_step=50 + round_ * 500, steps=500)
        clock.set_time((T0 + (50 + (round_ + 1) * 500) * 1000) / 1000)
        db.maintain()
    assert db.stats().chunks_written > 0
    assert _copied(held) == _expected(5, 50), "a held selection changed"
    # ... and a new selection sees every sample, from chunks and head.
    assert _copied(list(db.select_arrays(NAME, T0, FAR))) == _expected(5, 5050)


def test_selected_head_values_are_the_head_buffer_itself(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    _append(db, series=3, first_step=0, steps=40)
    selected = list(db.select_arrays(NAME, T0 + 10_000, T0 + 30_000))
    assert [len(s) for s in selected] == [21, 21, 21]
    for s in selected:
        head = db._index.get(s.labels)
        assert head is not None
        # No copy: the values are the head's own memory, from slot 10 on.
        own = np.frombuffer(head.vals, dtype=np.float64)
        assert np.shares_memory(np.asarray(s.values), own)
        assert np.asarray(s.values).ctypes.data == own[10:].ctypes.data
        assert memoryview(s.values).readonly
        with pytest.raises(TypeError):
            s.values[0] = 0.0  # type: ignore[index]
    # Appending after the selection neither fails nor moves what was selected.
    _append(db, series=3, first_step=40, steps=1000)
    assert _copied(selected) == [
        (lbls, ts[10:31], vals[10:31]) for lbls, ts, vals in _expected(3, 40)
    ]


def test_readers_holding_views_while_a_writer_and_maintenance_run(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    db = open_db(chunk_samples=16)
    steps, series = 1500, 4
    done = threading.Event()
    errors: list[BaseException] = []
    held: list[tuple[list[ArraySeries], list[tuple[Labels, list[int], list[float]]]]] = []

    def write() -> None:
        try:
            _append(db, series=series, first_step=0, steps=steps)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    def read() -> None:
        try:
            for _ in range(5000):  # bounded
                if done.is_set():
                    return
                got = list(db.select_arrays(NAME, T0, FAR))
                if len(held) < 200:
                    held.append((got, _copied(got)))
                db.maintain()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write), threading.Thread(target=read)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert held, "the reader never ran"
    for views, seen in held:
        assert _copied(views) == seen, "a held view changed under appends or maintenance"
        for _, ts, _ in seen:  # a consistent prefix at the time it was read
            steps_seen = [(t - T0) // 1000 for t in ts]
            assert steps_seen == list(range(len(steps_seen)))
    assert _copied(list(db.select_arrays(NAME, T0, FAR))) == _expected(series, steps)


QUERIES = [
    "http_requests_total",
    "up",
    "rate(http_requests_total[5m])",
    "sum by (job, code) (rate(http_requests_total[5m]))",
    "avg_over_time(http_requests_total[10m])",
    "max_over_time(up[3m])",
    "deriv(http_requests_total[5m])",
    "changes(http_requests_total[10m])",
    "resets(http_requests_total[10m])",
    "quantile_over_time(0.9, http_requests_total[10m])",
    "count_over_time(up[5m])",
    "last_over_time(http_requests_total[2m])",
    "http_requests_total / ignoring(code) group_left up",
]


def _bits(value: object) -> object:
    """A query result with every float as its bits (NaN equal to itself)."""
    if isinstance(value, float):
        return struct.pack("<d", value)
    if isinstance(value, list | tuple):
        return [_bits(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return [
            type(value).__name__,
            *(_bits(getattr(value, f)) for f in value.__dataclass_fields__),
        ]
    return value


@pytest.mark.parametrize("persist", [False, True], ids=["head", "head+chunks"])
def test_queries_over_head_views_match_the_in_memory_reference(
    open_db: Callable[..., TSDB], clock: SimulatedClock, persist: bool
) -> None:
    samples = _workload(seed=19)
    rng = random.Random(19)
    # A few infinities among the values (NaN and staleness markers are in already).
    samples = [
        (lbls, t, rng.choice([math.inf, -math.inf]) if rng.random() < 0.01 else v)
        for lbls, t, v in samples
    ]
    assert any(struct.pack("<d", v) == struct.pack("<d", STALE_NAN) for _, _, v in samples)
    db = open_db(chunk_samples=40)
    ref = MemoryStorage()
    _load(db, samples)
    _load(ref, samples)
    if persist:
        end_s = max(t for _, t, _ in samples) / 1000
        clock.set_time(end_s + 2 * 3600)  # every head sample older than head_max_age
        db.maintain()
        assert db.stats().chunks_written > 0
    end = max(t for _, t, _ in samples)
    for columnar in (True, False):
        on_db = Engine(db, columnar=columnar, columnar_min_windows=1)
        on_ref = Engine(ref, columnar=columnar, columnar_min_windows=1)
        for query in QUERIES:
            got = on_db.range(query, T0, end, 60_000).value
            assert _bits(got) == _bits(on_ref.range(query, T0, end, 60_000).value), query
            for at in (T0 + 1_000_000, end):
                got = on_db.instant(query, at).value
                assert _bits(got) == _bits(on_ref.instant(query, at).value), (query, at)


def test_a_held_view_survives_the_head_widening_its_times(
    open_db: Callable[..., TSDB], clock: SimulatedClock
) -> None:
    # A gap over 24.8 days no longer fits the head's 32-bit offsets: the times
    # are widened into fresh buffers, and then cut back by maintenance.
    day = 86_400_000
    db = open_db(retention_time=100 * 86400, head_max_age=1000 * 86400)
    times = [T0 - 50 * day + k for k in range(5)]
    for i, t in enumerate(times):
        app = db.appender()
        app.append(_labels(0), t, float(i))
        app.commit()
    (held,) = db.select_arrays(NAME, T0 - 60 * day, FAR)
    app = db.appender()
    app.append(_labels(0), T0, 5.0)
    app.commit()
    assert (held.timestamps.tolist(), list(held.values)) == (times, [0.0, 1.0, 2.0, 3.0, 4.0])
    (now,) = db.select_arrays(NAME, T0 - 60 * day, FAR)
    assert now.timestamps.tolist() == [*times, T0]
    assert list(now.values) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    db.maintain(force=True)
    for k in range(1, 200):  # appends after the cut, past a first buffer
        app = db.appender()
        app.append(_labels(0), T0 + k, 5.0 + k)
        app.commit()
    (after,) = db.select_arrays(NAME, T0 - 60 * day, FAR)
    assert after.timestamps.tolist() == [*times, *(T0 + k for k in range(200))]
    assert list(after.values) == [float(v) for v in range(205)]
    assert (held.timestamps.tolist(), list(held.values)) == (times, [0.0, 1.0, 2.0, 3.0, 4.0])
