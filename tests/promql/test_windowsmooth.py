"""double_exponential_smoothing over every window at once: the window loop's answers.

Random series (irregular gaps, NaN, +/-Inf, signed zeros, staleness
markers, windows of zero, one and many samples) with constant and per-step
factors go through the array path and ``Engine(columnar=False)``.
"""

from __future__ import annotations

import math
import struct
import threading
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.exceptions import EvaluationError, QueryLimitError
from soulwatch.promql import columnar, windowranks, windowsmooth
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

_value = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, STALE_NAN, 1e308, -1e308]),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
)
_series = st.lists(
    st.tuples(st.sampled_from([5_000, 15_000, 40_000, 200_000]), _value), max_size=40
)
_FACTORS = ["0.5, 0.5", "0.1, 0.9", "0.3, 0.01", "(time() % 9 + 1) / 11, 0.4"]


def _storage(data: list[list[tuple[int, float]]]) -> MemoryStorage:
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        t = 0
        for gap, value in samples:
            t += gap
            storage.add(Labels.of(__name__="m", i=str(i)), t, value)
    return storage


def _cells(result: QueryResult) -> dict[str, list[tuple[int, bytes | str]]]:
    assert isinstance(result.value, list)
    return {
        str(s.labels): [  # type: ignore[union-attr]
            (t, "NaN" if math.isnan(v) else struct.pack("<d", v))
            for t, v in zip(s.timestamps, s.values, strict=True)  # type: ignore[union-attr]
        ]
        for s in result.value
    }


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=4),
    factors=st.sampled_from(_FACTORS),
    window=st.sampled_from(["[30s]", "[2m]", "[10m]", "[5m] @ 600", "[3m:20s]"]),
    step_s=st.sampled_from([10, 30, 60]),
)
def test_smoothing_on_arrays_matches_the_window_loop(
    data: list[list[tuple[int, float]]], factors: str, window: str, step_s: int
) -> None:
    storage = _storage(data)
    query = f"double_exponential_smoothing(m{window}, {factors})"
    fast = Engine(storage, columnar_min_windows=0).range(query, 0, 1_500_000, step_s * 1000)
    slow = Engine(storage, columnar=False).range(query, 0, 1_500_000, step_s * 1000)
    assert _cells(fast) == _cells(slow), query


def test_range_queries_smooth_on_arrays() -> None:
    storage = _storage([[(15_000, float(i % 7)) for i in range(100)] for _ in range(3)])
    query = "double_exponential_smoothing(m[5m], 0.5, 0.2)"
    real = windowsmooth.double_exponential_smoothing
    with mock.patch.object(windowsmooth, "double_exponential_smoothing", side_effect=real) as spy:
        fast = Engine(storage, columnar_min_windows=0).range(query, 0, 1_500_000, 30_000)
    slow = Engine(storage, columnar=False).range(query, 0, 1_500_000, 30_000)
    assert spy.called
    assert _cells(fast) == _cells(slow)
    assert _cells(fast)


@pytest.mark.parametrize(
    "factors",
    ["0, 0.5", "0.5, 1", "1.5, -1", "NaN, 0.5", "0.5, (time() > bool 600) * 2 + 0.5"],
)
def test_bad_factors_fail_with_the_window_loops_message(factors: str) -> None:
    storage = _storage([[(15_000, float(i)) for i in range(100)]])
    query = f"double_exponential_smoothing(m[5m], {factors})"
    with pytest.raises(EvaluationError) as slow:
        Engine(storage, columnar=False).range(query, 0, 1_500_000, 30_000)
    with pytest.raises(EvaluationError) as fast:
        Engine(storage, columnar_min_windows=0).range(query, 0, 1_500_000, 30_000)
    assert str(fast.value) == str(slow.value)
    assert "factor" in str(fast.value)


def test_bad_factors_where_no_window_has_a_sample_are_not_an_error() -> None:
    storage = _storage([[(15_000, float(i)) for i in range(10)]])
    query = "double_exponential_smoothing(m[1m], (time() > bool 600) * 2 + 0.5, 0.5)"
    for engine in (Engine(storage, columnar=False), Engine(storage, columnar_min_windows=0)):
        result = engine.range(query, 0, 1_500_000, 30_000)
        assert result.value


class _CancelAfter(threading.Event):
    """A cancel event that reads as set from its ``calls``-th look on."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.looks = 0
        self.calls = calls

    def is_set(self) -> bool:
        self.looks += 1
        return self.looks >= self.calls


@pytest.mark.parametrize(
    "query",
    [
        "double_exponential_smoothing(m[2h], 0.5, 0.5)",
        "sum_over_time(m[2h])",
        "quantile_over_time(0.5, m[2h])",
    ],
)
def test_a_cancelled_query_stops_inside_the_array_computation(query: str) -> None:
    # Long windows (480 samples each): the walk over window positions looks
    # at the query's cancel event as it goes, not only before and after.
    storage = _storage([[(15_000, float(i % 13)) for i in range(960)]])
    with mock.patch.object(windowranks, "CHUNK_CELLS", 4096):
        whole = _CancelAfter(calls=10**9)
        Engine(storage).range(query, 7_200_000, 14_400_000, 15_000, cancel=whole)
        before_and_after = 3  # the looks outside the array call are far fewer than inside
        assert whole.looks > before_and_after + 2
        inside = _CancelAfter(calls=before_and_after + 2)
        with pytest.raises(QueryLimitError, match="cancelled"):
            Engine(storage).range(query, 7_200_000, 14_400_000, 15_000, cancel=inside)
