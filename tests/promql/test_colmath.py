"""Math functions over step-columns give the per-step code's values, bit for bit.

Random values around each function's edges (logarithms of zero and of
negatives, ``exp`` and ``sinh`` near overflow, ``asin`` outside [-1, 1],
signed zeros, NaN, +/-Inf) go through a range query on the array path and
on ``Engine(columnar=False)``.
"""

from __future__ import annotations

import math
import struct
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.promql import colmath, columnar, mathfuncs
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

_value = st.one_of(
    st.sampled_from(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            -0.5,
            1.5,
            -2.5,
            709.78,
            709.79,
            -745.2,
            710.5,
            1e308,
            math.nan,
            math.inf,
            -math.inf,
            STALE_NAN,
            5e-324,
            2.0**52 + 0.5,
            0.49999999999999994,
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(min_value=-3, max_value=3),
)
_series = st.lists(st.tuples(st.sampled_from([10_000, 30_000, 400_000]), _value), max_size=20)

_QUERIES = [f"{name}(m)" for name in sorted(mathfuncs.MATH)] + [
    "round(m)",
    "round(m, 0.25)",
    "round(m, 0)",
    "round(m, -3)",
    "round(m, time() % 3)",
    "clamp(m, -1, 1)",
    "clamp(m, 1, -1)",
    "clamp(m, NaN, 1)",
    "clamp(m, -0.0, 0.0)",
    "clamp(m, time() % 5 - 3, 1)",
    "clamp_min(m, 0)",
    "clamp_max(m, -0.0)",
    "clamp_max(m, NaN)",
    "abs(deriv(m[1m]))",
    "sqrt(sum(m))",
]


def _cells(result: QueryResult) -> dict[str, list[tuple[int, bytes | str]]]:
    assert isinstance(result.value, list)
    return {
        str(s.labels): [  # type: ignore[union-attr]
            (t, "NaN" if math.isnan(v) else struct.pack("<d", v))
            for t, v in zip(s.timestamps, s.values, strict=True)  # type: ignore[union-attr]
        ]
        for s in result.value
    }


def _storage(data: list[list[tuple[int, float]]]) -> MemoryStorage:
    storage = MemoryStorage()
    for i, samples in enumerate(data):
        t = 0
        for gap, value in samples:
            t += gap
            storage.add(Labels.of(__name__="m", i=str(i)), t, value)
    return storage


@pytest.mark.parametrize("query", _QUERIES)
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.lists(_series, min_size=1, max_size=4))
def test_math_on_columns_matches_the_per_step_code(
    data: list[list[tuple[int, float]]], query: str
) -> None:
    storage = _storage(data)
    fast = Engine(storage, columnar_min_windows=0).range(query, 0, 900_000, 20_000)
    slow = Engine(storage, columnar=False).range(query, 0, 900_000, 20_000)
    assert _cells(fast) == _cells(slow), query


@pytest.mark.parametrize("name", sorted(mathfuncs.MATH))
def test_every_math_function_has_a_column_form(name: str) -> None:
    assert colmath.supported(name)


@pytest.mark.parametrize(
    ("query", "entry"),
    [("ln(m)", "apply"), ("round(m, 2)", "round_to"), ("clamp_min(m, 3)", "clamp")],
)
def test_range_queries_take_the_column_path(query: str, entry: str) -> None:
    storage = _storage([[(10_000, float(i - 40)) for i in range(80)]])
    real = getattr(colmath, entry)
    with mock.patch.object(colmath, entry, side_effect=real) as spy:
        fast = Engine(storage).range(query, 0, 900_000, 20_000)
    slow = Engine(storage, columnar=False).range(query, 0, 900_000, 20_000)
    assert spy.called
    assert _cells(fast) == _cells(slow)


def test_overflow_and_domain_edges_keep_prometheus_answers() -> None:
    storage = MemoryStorage()
    for i, value in enumerate([800.0, 0.0, -1.0, math.inf]):
        storage.add(Labels.of(__name__="m", i=str(i)), 0, value)
    for query, expected in [
        ("exp(m)", [math.inf, 1.0, math.exp(-1.0), math.inf]),
        ("ln(m)", [math.log(800.0), -math.inf, math.nan, math.inf]),
        ("sinh(m)", [math.inf, 0.0, math.sinh(-1.0), math.inf]),
    ]:
        result = Engine(storage).range(query, 0, 30_000, 15_000)
        got = {s.labels.get("i"): s.values[0] for s in result.value}  # type: ignore[union-attr]
        want = dict(zip("0123", expected, strict=True))
        assert {k: repr(v) for k, v in got.items()} == {k: repr(v) for k, v in want.items()}
