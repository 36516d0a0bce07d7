"""Ranking/counting aggregations and math functions on step-columns: the step loop's answers.

Random series with ties, NaN, +/-Inf, signed zeros, staleness markers and
gaps longer than the lookback (missing steps) go through a range query on
the array path and on ``Engine(columnar=False)``, the per-step reference;
every point is compared by its bits.
"""

from __future__ import annotations

import math
import struct
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.exceptions import EvaluationError
from soulwatch.promql import colaggs, columnar
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

#: Few distinct values, so members tie often; the specials; and any float.
_value = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.0, -1.0, 0.5, math.nan, math.inf, -math.inf, STALE_NAN]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-50, max_value=50, allow_nan=False),
)
#: (gap to the previous sample in ms, value): gaps past the 5 m lookback leave steps empty.
_series = st.lists(
    st.tuples(st.sampled_from([10_000, 20_000, 45_000, 400_000]), _value), max_size=25
)

STEP_MS = 20_000
END_MS = 1_200_000


def _storage(data: list[list[tuple[int, float]]]) -> MemoryStorage:
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        t = 0
        for gap, value in samples:
            t += gap
            storage.add(Labels.of(__name__="m", i=str(i), g=str(i % 3)), t, value)
    return storage


def _cells(result: QueryResult) -> list[tuple[str, list[tuple[int, bytes | str]]]]:
    """Every point, in the result's order; NaN as one token, other floats by their bits."""
    assert isinstance(result.value, list)
    return [
        (
            str(s.labels),  # type: ignore[union-attr]
            [
                (t, "NaN" if math.isnan(v) else struct.pack("<d", v))
                for t, v in zip(s.timestamps, s.values, strict=True)  # type: ignore[union-attr]
            ],
        )
        for s in result.value
    ]


def _both(storage: MemoryStorage, query: str) -> tuple[QueryResult, QueryResult]:
    fast = Engine(storage).range(query, 0, END_MS, STEP_MS)
    slow = Engine(storage, columnar=False).range(query, 0, END_MS, STEP_MS)
    return fast, slow


_AGGREGATIONS = [
    "quantile(0.5, m)",
    "quantile(0.9, m)",
    "quantile(0, m)",
    "quantile(1, m)",
    "quantile(1.5, m)",
    "quantile(NaN, m)",
    "quantile((time() % 7) / 5 - 0.1, m)",
    "topk(1, m)",
    "topk(2, m)",
    "bottomk(2, m)",
    "bottomk(1, m)",
    "topk(time() % 3, m)",
    "limitk(2, m)",
    "limitk(0, m)",
    "limit_ratio(0.5, m)",
    "limit_ratio(-0.3, m)",
    "limit_ratio((time() % 5) / 2 - 1, m)",
    'count_values("v", m)',
    'count_values("g", m)',
    "avg(m)",
    "stddev(m)",
    "stdvar(m)",
    "count(m)",
    "group(m)",
]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_series, min_size=1, max_size=7),
    query=st.sampled_from(_AGGREGATIONS),
    grouping=st.sampled_from(["", " by (g)", " without (i)"]),
)
def test_aggregations_on_columns_match_the_per_step_code(
    data: list[list[tuple[int, float]]], query: str, grouping: str
) -> None:
    op, rest = query.split("(", 1)
    query = f"{op}{grouping}({rest}"
    fast, slow = _both(_storage(data), query)
    # The same series, in the same order, with the same bits at every step.
    assert _cells(fast) == _cells(slow), query
    assert fast.warnings == slow.warnings


@pytest.mark.parametrize(
    ("query", "entry"),
    [
        ("quantile(0.5, m)", "quantile"),
        ("topk(2, m)", "select_k"),
        ("limitk(1, m)", "select_k"),
        ("limit_ratio(0.5, m)", "limit_ratio"),
        ('count_values("v", m)', "count_values"),
    ],
)
def test_range_queries_take_the_column_path(query: str, entry: str) -> None:
    storage = _storage([[(10_000, float(i))] * 80 for i in range(4)])
    real = getattr(colaggs, entry)
    with mock.patch.object(colaggs, entry, side_effect=real) as spy:
        fast, slow = _both(storage, query)
    assert spy.called
    assert _cells(fast) == _cells(slow)


def test_topk_keeps_ties_in_series_order_and_ranks_nan_last() -> None:
    storage = MemoryStorage()
    for i, value in enumerate([1.0, math.nan, 1.0, 1.0]):
        for t in range(0, 120_000, 15_000):
            storage.add(Labels.of(__name__="m", i=str(i)), t, value)
    result = Engine(storage).range("topk(2, m)", 60_000, 120_000, 30_000)
    assert [s.labels.get("i") for s in result.value] == ["0", "2"]  # type: ignore[union-attr]
    result = Engine(storage).range("bottomk(4, m)", 60_000, 120_000, 30_000)
    assert len(result.value) == 4  # type: ignore[arg-type]


def test_count_values_tells_negative_zero_from_zero() -> None:
    storage = MemoryStorage()
    for i, value in enumerate([0.0, -0.0, 0.0, math.nan]):
        storage.add(Labels.of(__name__="m", i=str(i)), 0, value)
    result = Engine(storage).range('count_values("v", m)', 0, 60_000, 30_000)
    counts = {s.labels.get("v"): list(s.values) for s in result.value}  # type: ignore[union-attr]
    assert counts == {"0": [2.0] * 3, "-0": [1.0] * 3, "NaN": [1.0] * 3}


def test_parameter_errors_are_the_same_on_columns() -> None:
    storage = _storage([[(10_000, 1.0)] * 10])
    for query, message in [
        ("topk(NaN, m)", "Parameter value is NaN"),
        ("limit_ratio(NaN, m)", "Ratio value is NaN"),
        ('count_values("", m)', "invalid label name"),
    ]:
        with pytest.raises(EvaluationError, match=message):
            Engine(storage).range(query, 0, END_MS, STEP_MS)


#: Magnitudes far apart, so the compensation of avg's sum decides the last bits.
_spread = st.one_of(
    st.sampled_from([1e16, -1e16, 2.0**53, 1.0, -1.0, 0.1, 3e-5, -0.0, 0.0]),
    st.floats(min_value=-1e17, max_value=1e17, allow_nan=False),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(
        st.lists(st.tuples(st.sampled_from([10_000, 20_000, 400_000]), _spread), max_size=20),
        min_size=2,
        max_size=12,
    ),
    grouping=st.sampled_from(["", " by (g)"]),
)
def test_avg_of_finite_members_keeps_the_compensation_bits(
    data: list[list[tuple[int, float]]], grouping: str
) -> None:
    fast, slow = _both(_storage(data), f"avg{grouping} (m)")
    assert _cells(fast) == _cells(slow)


def test_avg_compensates_a_cancelling_sum() -> None:
    storage = MemoryStorage()
    for i, value in enumerate([1e16, 1.0, -1e16, 1.0]):
        for t in range(0, 120_000, 15_000):
            storage.add(Labels.of(__name__="m", i=str(i)), t, value)
    (series,) = Engine(storage).range("avg(m)", 0, 60_000, 30_000).value  # type: ignore[misc]
    assert list(series.values) == [0.5, 0.5, 0.5]  # type: ignore[union-attr]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.lists(_series, min_size=1, max_size=7),
    query=st.sampled_from(
        ["quantile(0.3, m)", "topk(2, m)", "bottomk by (g) (1, m)", "limitk(1, m)"]
    ),
    cells=st.sampled_from([1, 5, 13]),
)
def test_groups_stacked_a_few_steps_at_a_time_give_the_same_answers(
    data: list[list[tuple[int, float]]], query: str, cells: int
) -> None:
    # A tiny block: the members are stacked a step or two at a time, as a day
    # of many series is in blocks of a million cells.
    storage = _storage(data)
    with mock.patch.object(colaggs, "BLOCK_CELLS", cells):
        fast = Engine(storage).range(query, 0, END_MS, STEP_MS)
    slow = Engine(storage, columnar=False).range(query, 0, END_MS, STEP_MS)
    assert _cells(fast) == _cells(slow), query
