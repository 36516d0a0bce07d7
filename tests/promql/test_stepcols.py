"""Instant selectors over a range query's steps, as columns: the step loop's answers.

Random series with gaps longer and shorter than the lookback, staleness
markers, NaN and signed zeros, read at every step at once; ``Engine(columnar=False)``
walks the steps one by one and is the reference.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.promql import columnar
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

_value = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -0.0, 0.0, STALE_NAN, STALE_NAN]),
)
_samples = st.lists(st.tuples(st.integers(min_value=1, max_value=400_000), _value), max_size=30)


def _cells(result: QueryResult) -> dict[str, list[tuple[int, object]]]:
    assert isinstance(result.value, list)
    return {
        str(s.labels): [  # type: ignore[union-attr]
            (t, "NaN" if math.isnan(v) else struct.pack("<d", v))
            for t, v in zip(s.timestamps, s.values, strict=True)  # type: ignore[union-attr]
        ]
        for s in result.value
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    data=st.lists(_samples, min_size=1, max_size=6),
    query=st.sampled_from(
        ["m", "m offset 2m", "timestamp(m)", "m @ 900", "-m", "m > 0", "max(m)", "count(m)"]
    ),
    lookback_s=st.sampled_from([60, 300, 1000]),
    step_s=st.sampled_from([10, 30, 90]),
)
def test_selector_columns_match_the_step_loop(
    data: list[list[tuple[int, float]]], query: str, lookback_s: int, step_s: int
) -> None:
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        t = 0
        for gap, value in samples:
            t += gap
            storage.add(Labels.of(__name__="m", i=str(i)), t, value)
    kwargs = {"lookback_delta_ms": lookback_s * 1000}
    fast = Engine(storage, **kwargs).range(query, 0, 3_000_000, step_s * 1000)  # type: ignore[arg-type]
    slow = Engine(storage, columnar=False, **kwargs).range(  # type: ignore[arg-type]
        query, 0, 3_000_000, step_s * 1000
    )
    assert _cells(fast) == _cells(slow), query


def test_a_staleness_marker_ends_the_series_until_the_next_sample() -> None:
    storage = MemoryStorage()
    labels = Labels.of(__name__="m")
    for t, v in [(0, 1.0), (15_000, 2.0), (30_000, STALE_NAN), (90_000, 4.0)]:
        storage.add(labels, t, v)
    result = Engine(storage).range("m", 0, 120_000, 15_000)
    (series,) = result.value  # type: ignore[misc]
    assert list(zip(series.timestamps, series.values, strict=True)) == [  # type: ignore[union-attr]
        (0, 1.0),
        (15_000, 2.0),
        (90_000, 4.0),
        (105_000, 4.0),
        (120_000, 4.0),
    ]
