"""The array path for range functions gives the step-by-step path's answers, bit for bit.

Random series (irregular gaps, counter resets, NaN, +/-Inf, signed zeros,
staleness markers) are queried through both paths of the same engine code:
``Engine(columnar=False)`` is the reference window loop.
"""

from __future__ import annotations

import math
import struct
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.promql import columnar, windowsums
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

FUNCTIONS = sorted(columnar.VECTORISED)

#: Huge values overflow a window's running sum (avg_over_time then averages incrementally).
_special = st.sampled_from(
    [math.nan, math.inf, -math.inf, 0.0, -0.0, STALE_NAN, 1.7e308, -1.7e308, 5e-324]
)
_plain = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
#: A sample: a counter-like step (mostly up, sometimes a reset), or a special value.
_sample = st.tuples(
    st.integers(min_value=1, max_value=90_000),  # gap to the previous sample, ms
    st.one_of(
        st.tuples(st.just("inc"), st.floats(min_value=0, max_value=50)),
        st.tuples(st.just("reset"), st.floats(min_value=0, max_value=5)),
        st.tuples(st.just("set"), _plain),
        st.tuples(st.just("set"), _special),
    ),
)
_series = st.lists(_sample, min_size=0, max_size=60)
#: quantile_over_time's phi: interpolated, the ends, outside [0, 1], NaN, one per step.
_PHIS = ["0.5", "0.95", "0.9", "0", "1", "0.25", "-0.5", "1.5", "NaN", "(time() % 7) / 5 - 0.1"]


def _load(storage: MemoryStorage, name: str, index: int, samples: list[tuple[int, object]]) -> None:
    t = 0
    value = 0.0
    for gap, (kind, x) in samples:
        t += gap
        assert isinstance(x, float)
        if kind == "inc":
            value = (value if math.isfinite(value) else 0.0) + x
            out = value
        elif kind == "reset":
            value = x
            out = value
        else:
            out = x
        storage.add(Labels.of(__name__=name, i=str(index), g=str(index % 2)), t, out)


def _cells(result: QueryResult) -> dict[str, list[tuple[int, bytes | str]]]:
    """Every point of a result; NaN as one token, other floats by their bits (so -0.0 != 0.0)."""
    assert isinstance(result.value, list)
    out = {}
    for s in result.value:
        points = []
        for t, v in zip(s.timestamps, s.values, strict=True):  # type: ignore[union-attr]
            points.append((t, "NaN" if math.isnan(v) else struct.pack("<d", v)))
        out[str(s.labels)] = points  # type: ignore[union-attr]
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=5),
    func=st.sampled_from(FUNCTIONS),
    range_s=st.sampled_from([15, 60, 150, 300, 600]),
    step_s=st.sampled_from([7, 15, 30, 60]),
    modifier=st.sampled_from(["", " offset 45s", " @ 600", "subquery"]),
    agg=st.sampled_from(["", "sum", "count", "min", "max", "avg", "stddev", "group"]),
    phi=st.sampled_from(_PHIS),
)
def test_array_path_matches_the_window_loop(
    *,
    data: list[list[tuple[int, tuple[str, float]]]],
    func: str,
    range_s: int,
    step_s: int,
    modifier: str,
    agg: str,
    phi: str,
) -> None:
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        _load(storage, "m_total", i, samples)
    # quantile_over_time's phi comes first: inside [0, 1], outside, NaN, or per step.
    head = f"{func}({phi}, " if func == "quantile_over_time" else f"{func}("
    if modifier == "subquery":
        query = f"{head}m_total[{range_s}s:10s]"
    else:
        query = f"{head}m_total[{range_s}s]{modifier}"
    # predict_linear's horizon: a constant, or one that changes at every step.
    query += {
        "predict_linear": ", 300)" if step_s % 2 else ", time() - 600)",
        "double_exponential_smoothing": ", 0.3, 0.6)" if step_s % 2 else ", 0.5, 0.1)",
    }.get(func, ")")
    if agg:
        query = f"{agg} by (g) ({query})"
    end_ms = 1_200_000
    calls = []
    real = columnar.evaluate

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(args[0])
        return real(*args, **kwargs)  # type: ignore[arg-type]

    with mock.patch.object(columnar, "evaluate", counted):
        fast = Engine(storage, columnar_min_windows=0).range(query, 0, end_ms, step_s * 1000)
    slow = Engine(storage, columnar=False).range(query, 0, end_ms, step_s * 1000)
    if any(samples for samples in data):
        assert calls == [func], "the array path did not run"
    assert _cells(fast) == _cells(slow), query
    assert fast.infos == slow.infos
    assert fast.warnings == slow.warnings


def test_many_resets_in_one_window_are_added_back_in_order() -> None:
    # Three resets inside each 5m window: the exact sum, not a cumulative difference.
    storage = MemoryStorage()
    values = [0.1, 0.7, 0.3, 1e16, 0.2, 3.3, 0.1, 2.9, 1.1, 7.0] * 6
    for k, v in enumerate(values):
        storage.add(Labels.of(__name__="c_total"), k * 30_000, v)
    query = "increase(c_total[5m])"
    fast = Engine(storage, columnar_min_windows=0).range(query, 0, 1_800_000, 15_000)
    slow = Engine(storage, columnar=False).range(query, 0, 1_800_000, 15_000)
    assert _cells(fast) == _cells(slow)
    # Every step from 30 s on has at least two samples in its window.
    assert len(_cells(fast)["{}"]) == 119


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(_series, min_size=1, max_size=6),
    agg=st.sampled_from(sorted(columnar.AGGREGATIONS)),
    grouping=st.sampled_from(["", " by (g)", " without (i)"]),
)
def test_aggregations_over_step_columns_match_the_per_step_code(
    data: list[list[tuple[int, tuple[str, float]]]], agg: str, grouping: str
) -> None:
    # Raw samples: NaN, +/-Inf, signed zeros and gaps reach the aggregation as they are.
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        _load(storage, "m_total", i, samples)
    query = f"{agg}{grouping} (m_total)"
    fast = Engine(storage).range(query, 0, 1_200_000, 20_000)
    slow = Engine(storage, columnar=False).range(query, 0, 1_200_000, 20_000)
    assert _cells(fast) == _cells(slow), query


def test_sum_keeps_kahan_compensation_across_steps() -> None:
    # A naive float sum gives 0.0 here; Prometheus's compensated sum gives 2.0.
    storage = MemoryStorage()
    for i, v in enumerate([1.0, 1e100, 1.0, -1e100]):
        for t in range(0, 600_000, 15_000):
            storage.add(Labels.of(__name__="x", i=str(i)), t, v)
    result = Engine(storage).range("sum(x)", 0, 300_000, 15_000)
    assert isinstance(result.value, list)
    assert result.value[0].values == [2.0] * 21  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.lists(st.one_of(_plain, _special), min_size=100, max_size=100), min_size=1, max_size=3
    ),
    func=st.sampled_from(
        [
            "sum_over_time",
            "avg_over_time",
            "stddev_over_time",
            "max_over_time",
            "deriv",
            "mad_over_time",
            "ts_of_min_over_time",
            "quantile_over_time",
        ]
    ),
)
def test_regular_scrapes_fill_every_window_and_match_the_window_loop(
    values: list[list[float]], func: str
) -> None:
    # Every window holds the same number of samples: the positions need no mask.
    storage = MemoryStorage()
    for i, series in enumerate(values):
        for k, v in enumerate(series):
            storage.add(Labels.of(__name__="g", i=str(i)), k * 15_000, v)
    query = f"{func}(0.9, g[2m])" if func == "quantile_over_time" else f"{func}(g[2m])"
    fast = Engine(storage, columnar_min_windows=0).range(query, 600_000, 1_200_000, 15_000)
    slow = Engine(storage, columnar=False).range(query, 600_000, 1_200_000, 15_000)
    assert _cells(fast) == _cells(slow), query


def _only_values(result: QueryResult) -> list[float]:
    assert isinstance(result.value, list)
    assert len(result.value) == 1
    return list(result.value[0].values)  # type: ignore[union-attr]


def test_quantile_over_time_interpolates_and_answers_infinity_outside_zero_one() -> None:
    # Samples 4, 1, 3, 2 (then NaN) in each 2m window: Prometheus sorts them and interpolates.
    storage = MemoryStorage()
    for k, v in enumerate([4.0, 1.0, 3.0, 2.0] * 10):
        storage.add(Labels.of(__name__="lat"), k * 30_000, v)
    engine = Engine(storage, columnar_min_windows=0)

    def at(query: str) -> list[float]:
        return _only_values(engine.range(query, 600_000, 660_000, 30_000))

    assert at("quantile_over_time(0.5, lat[2m])") == [2.5, 2.5, 2.5]
    assert at("quantile_over_time(0.9, lat[2m])") == [3.7, 3.7, 3.7]
    assert at("quantile_over_time(0, lat[2m])") == [1.0, 1.0, 1.0]
    assert at("quantile_over_time(-0.1, lat[2m])") == [-math.inf] * 3
    assert at("quantile_over_time(1.1, lat[2m])") == [math.inf] * 3
    assert all(math.isnan(v) for v in at("quantile_over_time(NaN, lat[2m])"))
    # The median absolute deviation of 1, 2, 3, 4: deviations 1.5, 0.5, 0.5, 1.5.
    assert at("mad_over_time(lat[2m])") == [1.0, 1.0, 1.0]
    result = engine.range("quantile_over_time(1.1, lat[2m])", 600_000, 660_000, 30_000)
    assert result.warnings


def test_order_statistics_sorted_in_many_chunks_match_the_window_loop() -> None:
    # Long windows over many series: the padded rows are sorted a few at a time.
    from soulwatch.promql import windowranks

    storage = MemoryStorage()
    for i in range(6):
        for k in range(200):
            v = math.sin(k * (i + 1)) * 100 if k % 17 else -0.0
            storage.add(Labels.of(__name__="lat", i=str(i)), k * 15_000, v)
    for query in ("quantile_over_time(0.95, lat[20m])", "mad_over_time(lat[20m])"):
        with mock.patch.object(windowranks, "CHUNK_CELLS", 500):
            fast = Engine(storage, columnar_min_windows=0).range(query, 0, 3_000_000, 15_000)
        slow = Engine(storage, columnar=False).range(query, 0, 3_000_000, 15_000)
        assert _cells(fast) == _cells(slow), query
        assert len(_cells(fast)) == 6


#: Finite values of every magnitude (and both zeros): the in-place sums' domain.
_finite = st.one_of(
    _plain,
    st.floats(min_value=-1e100, max_value=1e100, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 5e-324, 1e-300, 0.1, 1e15, 2.0**53 + 1]),
)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(
        st.lists(st.tuples(st.integers(min_value=1, max_value=40_000), _finite), max_size=80),
        min_size=1,
        max_size=4,
    ),
    func=st.sampled_from(["sum_over_time", "avg_over_time", "deriv", "predict_linear"]),
    range_s=st.sampled_from([30, 120, 300]),
    step_s=st.sampled_from([10, 15, 60]),
    shared=st.booleans(),
)
def test_in_place_sums_over_finite_values_match_the_window_loop(
    *, data: list[list[tuple[int, float]]], func: str, range_s: int, step_s: int, shared: bool
) -> None:
    # Finite values too small to overflow: the sums run in place, with the same bits.
    if shared:  # every series on the first one's sample times (one target's series)
        data = [[(g, v) for (g, _), (_, v) in zip(data[0], s, strict=False)] for s in data]
        data = [s[: min(map(len, data))] for s in data]
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        t = 0
        for gap, v in samples:
            t += gap
            storage.add(Labels.of(__name__="g", i=str(i)), t, v)
    tail = ", 120)" if func == "predict_linear" else ")"
    query = f"{func}(g[{range_s}s]{tail}"
    checks: list[bool] = []
    real = windowsums.no_overflow

    def recorded(*args: Any) -> bool:
        checks.append(real(*args))
        return checks[-1]

    with mock.patch.object(windowsums, "no_overflow", recorded):
        fast = Engine(storage, columnar_min_windows=0).range(query, 0, 2_000_000, step_s * 1000)
    slow = Engine(storage, columnar=False).range(query, 0, 2_000_000, step_s * 1000)
    assert _cells(fast) == _cells(slow), query
    if any(len(s) > 1 for s in data):
        assert True in checks, "the in-place sums did not run"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(st.lists(_finite, min_size=90, max_size=90), min_size=1, max_size=3),
    func=st.sampled_from(["sum_over_time", "avg_over_time", "deriv", "predict_linear"]),
    shared=st.booleans(),
)
def test_in_place_sums_over_full_windows_match_the_window_loop(
    values: list[list[float]], func: str, shared: bool
) -> None:
    # Regular scrapes: every window holds the same samples count (no mask at
    # all); with ``shared``, every series has the same sample times (one target).
    storage = MemoryStorage()
    for i, series in enumerate(values):
        for k, v in enumerate(series):
            storage.add(Labels.of(__name__="g", i=str(i)), k * 15_000 + (0 if shared else 7 * i), v)
    tail = ", 120)" if func == "predict_linear" else ")"
    query = f"{func}(g[2m]{tail}"
    fast = Engine(storage, columnar_min_windows=0).range(query, 300_000, 1_200_000, 15_000)
    slow = Engine(storage, columnar=False).range(query, 300_000, 1_200_000, 15_000)
    assert _cells(fast) == _cells(slow), query


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=5),
    func=st.sampled_from(FUNCTIONS),
    range_s=st.sampled_from([15, 60, 300]),
    at_s=st.integers(0, 1_300),
    agg=st.sampled_from(["", "sum", "count"]),
)
def test_instant_queries_on_the_array_path_match_the_window_loop(
    *, data: list[list[tuple[int, tuple[str, float]]]], func: str, range_s: int, at_s: int, agg: str
) -> None:
    # One step: one value per series (some with no sample in their window).
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        _load(storage, "m_total", i, samples)
    head = f"{func}(0.5, " if func == "quantile_over_time" else f"{func}("
    tail = {"predict_linear": ", 300)", "double_exponential_smoothing": ", 0.4, 0.7)"}
    query = f"{head}m_total[{range_s}s]" + tail.get(func, ")")
    if agg:
        query = f"{agg} by (g) ({query})"
    fast = Engine(storage, columnar_min_windows=0).instant(query, at_s * 1000)
    slow = Engine(storage, columnar=False).instant(query, at_s * 1000)
    assert _samples(fast) == _samples(slow), query
    assert fast.infos == slow.infos
    assert fast.warnings == slow.warnings


def _samples(result: QueryResult) -> list[tuple[str, int, bytes | str]]:
    """An instant vector's samples, in order; NaN as one token, other floats by their bits."""
    assert isinstance(result.value, list)
    return [
        (str(s.labels), s.t_ms, "NaN" if math.isnan(s.value) else struct.pack("<d", s.value))  # type: ignore[union-attr]
        for s in result.value
    ]
