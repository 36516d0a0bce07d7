"""Range functions over a selection the TSDB hands out in one batch.

The embedded TSDB gives the array path a whole selection end to end
(:meth:`TSDB.select_batch`) when it is all in the head; the engine then
keeps it as one :class:`~soulwatch.promql.columnar.RangeBatch`. Random
series (gaps, resets, NaN, +/-Inf, staleness markers, some persisted to
chunks) are queried on a real TSDB through that path and through the
step-by-step window loop (``Engine(columnar=False)``): the answers must be
the same, bit for bit.
"""

from __future__ import annotations

import math
import struct
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.clock import SimulatedClock
from soulwatch.promql import columnar
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import STALE_NAN, Labels, Matcher

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

FUNCTIONS = sorted(columnar.VECTORISED)
T0 = 1_700_000_000_000

_value = st.one_of(
    st.floats(min_value=0, max_value=50),  # a counter's increment
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, STALE_NAN, -3.0]),
)
#: One series: (gap to the previous sample in ms, increment or special value).
_series = st.lists(
    st.tuples(st.integers(min_value=1, max_value=60_000), _value), min_size=0, max_size=40
)


def _fill(db: TSDB, data: list[list[tuple[int, float]]]) -> int:
    """Every series' samples (a running sum of finite increments); the last time written."""
    last = T0
    for i, samples in enumerate(data):
        t, total = T0, 0.0
        app = db.appender()
        for gap, x in samples:
            t += gap
            if math.isfinite(x) and x >= 0:
                total += x
                out = total
            elif x == -3.0:
                total = 0.0  # a counter reset
                out = total
            else:
                out = x
            app.append(Labels.of(__name__="m_total", i=str(i), g=str(i % 2)), t, out)
        app.commit()
        last = max(last, t)
    return last


def _points(result: QueryResult) -> list[tuple[str, list[tuple[int, bytes | str]]]]:
    """Every point of a result; NaN as one token, other floats by their bits."""
    assert isinstance(result.value, list)
    out = []
    for s in result.value:
        if hasattr(s, "timestamps"):
            pairs = list(zip(s.timestamps, s.values, strict=True))
        else:
            pairs = [(s.t_ms, s.value)]
        points = [(t, "NaN" if math.isnan(v) else struct.pack("<d", v)) for t, v in pairs]
        out.append((str(s.labels), points))
    return out


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=5),
    func=st.sampled_from(FUNCTIONS),
    range_s=st.sampled_from([15, 60, 300, 900]),
    agg=st.sampled_from(["", "sum by (g)", "count"]),
    persist=st.booleans(),
    step_s=st.sampled_from([0, 0, 30]),
)
def test_a_batched_selection_gives_the_window_loops_answers(
    *,
    data: list[list[tuple[int, float]]],
    func: str,
    range_s: int,
    agg: str,
    persist: bool,
    step_s: int,
) -> None:
    head = f"{func}(0.9, " if func == "quantile_over_time" else f"{func}("
    query = f"{head}m_total[{range_s}s]" + (", 300)" if func == "predict_linear" else ")")
    if agg:
        query = f"{agg} ({query})"
    with tempfile.TemporaryDirectory() as tmp:
        clock = SimulatedClock(start=T0 / 1000)
        db = TSDB(StorageConfig(path=Path(tmp) / "tsdb"), clock=clock)
        try:
            last = _fill(db, data)
            clock.set_time(last / 1000)
            if persist:
                db.maintain(force=True)  # every sample so far in chunks: no batch
            batches: list[bool] = []
            real = db.select_batch

            def recorded(*args: object, **kwargs: object) -> object:
                batch = real(*args, **kwargs)  # type: ignore[arg-type]
                batches.append(batch is not None)
                return batch

            # One series per packed batch: the batch is cut in slices of one.
            with (
                mock.patch.object(db, "select_batch", recorded),
                mock.patch.object(columnar, "BATCH_CELLS", 1),
            ):
                fast_engine = Engine(db, clock=clock, columnar_min_windows=0)
                if step_s:
                    fast = fast_engine.range(query, T0, last + 60_000, step_s * 1000)
                else:
                    fast = fast_engine.instant(query, last)
            slow_engine = Engine(db, clock=clock, columnar=False)
            if step_s:
                slow = slow_engine.range(query, T0, last + 60_000, step_s * 1000)
            else:
                slow = slow_engine.instant(query, last)
        finally:
            db.close()
    assert _points(fast) == _points(slow), query
    assert fast.infos == slow.infos
    assert fast.warnings == slow.warnings
    if persist and any(data):
        assert batches == [False], "a selection reaching into chunks cannot be one batch"
    elif not persist:
        assert batches == [True], "the batch path did not run"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=5),
    query=st.sampled_from(
        ["m_total", "timestamp(m_total)", "m_total > 20", "sum by (g) (m_total)", "-m_total"]
    ),
    back_s=st.sampled_from([0, 1, 120, 299, 300, 301, 900]),
    pinned=st.booleans(),
)
def test_an_instant_selector_over_a_batch_gives_the_step_paths_answers(
    *, data: list[list[tuple[int, float]]], query: str, back_s: int, pinned: bool
) -> None:
    # The last sample of each series within the 5-minute lookback, staleness
    # markers included; ``@`` pins a range query's every step to one time.
    with tempfile.TemporaryDirectory() as tmp:
        clock = SimulatedClock(start=T0 / 1000)
        db = TSDB(StorageConfig(path=Path(tmp) / "tsdb"), clock=clock)
        try:
            last = _fill(db, data)
            at = last - back_s * 1000
            if pinned:
                text = query.replace("m_total", f"m_total @ {at / 1000}")
                answers = [
                    Engine(db, clock=clock, columnar=columnar_on).range(text, T0, last, 60_000)
                    for columnar_on in (True, False)
                ]
            else:
                answers = [
                    Engine(db, clock=clock, columnar=columnar_on).instant(query, at)
                    for columnar_on in (True, False)
                ]
        finally:
            db.close()
    fast, slow = answers
    assert _points(fast) == _points(slow), query
    assert fast.infos == slow.infos


def test_a_batch_holds_each_series_samples_in_range_sorted_by_labels(tmp_path: Path) -> None:
    clock = SimulatedClock(start=T0 / 1000)
    db = TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock)
    app = db.appender()
    for t in range(0, 100_000, 10_000):
        for name in ("b", "a", "c"):
            app.append(Labels.of(__name__="up", job=name), T0 + t, float(t + ord(name)))
    app.commit()
    batch = db.select_batch([Matcher.equal("__name__", "up")], T0 + 25_000, T0 + 55_000)
    assert batch is not None
    assert [lbls.get("job") for lbls in batch.labels] == ["a", "b", "c"]
    assert batch.lengths.tolist() == [3, 3, 3]
    assert batch.times.tolist() == [T0 + t for t in (30_000, 40_000, 50_000)] * 3
    assert batch.values.tolist()[:3] == [30_097.0, 40_097.0, 50_097.0]
    # The same series one by one, as select_arrays gives them.
    arrays = list(db.select_arrays([Matcher.equal("__name__", "up")], T0 + 25_000, T0 + 55_000))
    assert [(s.labels, s.timestamps.tolist(), s.values.tolist()) for s in batch.series()] == [
        (s.labels, s.timestamps.tolist(), s.values.tolist()) for s in arrays
    ]
    # Nothing in range: an empty batch, not an error.
    empty = db.select_batch([Matcher.equal("__name__", "up")], T0 + 200_000, T0 + 300_000)
    assert empty is not None
    assert len(empty) == 0
    assert len(empty.times) == 0
    db.close()


def test_a_selection_reaching_into_chunks_is_read_series_by_series(tmp_path: Path) -> None:
    clock = SimulatedClock(start=T0 / 1000)
    db = TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock)
    lbls = Labels.of(__name__="m_total", job="a")
    app = db.appender()
    for k in range(10):
        app.append(lbls, T0 + k * 15_000, 10.0 * k)
    app.commit()
    clock.set_time((T0 + 150_000) / 1000)
    db.maintain(force=True)  # the first ten samples now in a chunk
    app = db.appender()
    for k in range(10, 15):
        app.append(lbls, T0 + k * 15_000, 10.0 * k)
    app.commit()
    query = "increase(m_total[5m])"
    at = T0 + 14 * 15_000
    assert db.select_batch([Matcher.equal("job", "a")], at - 300_000 + 1, at) is None
    # A window inside the head only is a batch again.
    assert db.select_batch([Matcher.equal("job", "a")], at - 30_000 + 1, at) is not None
    fast = Engine(db, clock=clock, columnar_min_windows=0).instant(query, at)
    slow = Engine(db, clock=clock, columnar=False).instant(query, at)
    assert _points(fast) == _points(slow)
    # 15 samples 15 s apart, 10 a step, chunk and head together: 0 to 140. No
    # extrapolation: the counter starts at 0 and the last sample is at the query's time.
    ((_, [(_, value)]),) = _points(fast)
    assert struct.unpack("<d", value)[0] == 140.0
    db.close()
