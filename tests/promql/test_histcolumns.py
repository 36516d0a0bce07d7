"""Classic histograms over step-columns give the per-step code's answers, bit for bit.

Random bucket data (buckets missing at some steps, counts that go down or
differ by floating-point noise, NaN and +/-Inf counts, repeated and signed
zero bounds, no +Inf bucket, a quantile that changes from step to step) goes
through :mod:`soulwatch.promql.histcolumns` and through the per-step
functions of :mod:`soulwatch.promql.histograms`, directly and through the
engine (``Engine(columnar=False)`` is the per-step reference).
"""

from __future__ import annotations

import math
import struct
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from soulwatch.exceptions import EvaluationError
from soulwatch.promql import histcolumns, histograms
from soulwatch.promql.engine import Engine, Evaluator
from soulwatch.promql.parser import parse
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels

#: Bounds: equal ones written differently, signed zeros, negative and infinite ones.
_BOUNDS = ["-Inf", "-1", "-0", "0", "0.1", "0.5", "1", "1.0", "2.5", "10", "+Inf", "Inf"]
#: Counts: ties, noise within 1e-12, decreases, zeros of both signs, NaN, +/-Inf, subnormals.
_count = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, 5.0, math.nan]),
    st.sampled_from([1.0 + 1e-13, 1.0 - 1e-13, 1e-320, 5e-324, -1.0, math.inf, -math.inf, 1.7e308]),
    st.floats(min_value=0, max_value=100, allow_nan=False),
)
_q = st.sampled_from([0.0, 0.5, 0.9, 0.95, 0.99, 1.0, 0.25, 1e-300, -0.5, 1.5, math.nan])


def _bits(v: float | None) -> object:
    """A value as its bits (so -0.0 != 0.0), NaN as one token."""
    if v is None:
        return None
    return "NaN" if math.isnan(v) else struct.pack("<d", v)


def _step_buckets(
    bounds: list[float], cells: list[list[float | None]], i: int
) -> list[list[float]]:
    return [[b, row[i]] for b, row in zip(bounds, cells, strict=True) if row[i] is not None]  # type: ignore[list-item]


def _columns(cells: list[list[float | None]]) -> tuple[object, object]:
    present = np.array([[v is not None for v in row] for row in cells], dtype=np.bool_)
    values = np.array([[0.0 if v is None else v for v in row] for row in cells], dtype=np.float64)
    return values, present


_matrix = st.integers(min_value=1, max_value=6).flatmap(
    lambda n: st.tuples(
        st.lists(
            st.tuples(st.sampled_from(_BOUNDS), st.lists(_count, min_size=n, max_size=n)),
            min_size=1,
            max_size=8,
        ),
        st.lists(_q, min_size=n, max_size=n),
        st.lists(_q, min_size=n, max_size=n),
    )
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=_matrix)
# Equal bounds whose first series is absent: the merged count is the second's own -0.0.
@example(data=([("1", [None]), ("1", [-0.0]), ("+Inf", [1.0])], [0.5], [2.0]))
def test_quantile_and_fraction_match_the_per_step_functions(
    data: tuple[list[tuple[str, list[float | None]]], list[float], list[float]],
) -> None:
    rows, qs, others = data
    bounds = [float(text) for text, _ in rows]
    cells = [row for _, row in rows]
    values, present = _columns(cells)
    with np.errstate(all="ignore"):
        prepared = histcolumns.prepare(bounds, values, present)
        got, forced = histcolumns.quantile(np.array(qs), prepared)
        fractions = histcolumns.fraction(np.array(qs), np.array(others), prepared)
    for i, q in enumerate(qs):
        buckets = _step_buckets(bounds, cells, i)
        if not buckets:
            continue
        want, want_forced = histograms.bucket_quantile(q, [list(b) for b in buckets])
        assert _bits(float(got[i])) == _bits(want), (i, q, buckets)
        assert bool(forced[i]) == want_forced, (i, q, buckets)
        want_fraction = histograms.bucket_fraction(q, others[i], [list(b) for b in buckets])
        assert _bits(float(fractions[i])) == _bits(want_fraction), (i, q, others[i], buckets)


def _cells(result: QueryResult) -> dict[str, list[tuple[int, object]]]:
    assert isinstance(result.value, list)
    return {
        str(s.labels): [(t, _bits(v)) for t, v in zip(s.timestamps, s.values, strict=True)]  # type: ignore[union-attr]
        for s in result.value
    }


_QUERIES = [
    "histogram_quantile({q}, h_bucket)",
    "histogram_quantile({q}, rate(h_bucket[1m]))",
    "histogram_quantile({q}, sum by (le) (rate(h_bucket[1m])))",
    "histogram_quantile({q}, sum without (i) (h_bucket))",
    "histogram_fraction(0, {q}, h_bucket)",
    "histogram_fraction({q}, 2, rate(h_bucket[1m]))",
    'histogram_quantiles(h_bucket, "phi", {q}, 0.5)',
]
#: The quantile: fixed, outside [0, 1], NaN, or one per step.
_QS = ["0.9", "0.5", "0", "1", "-1", "2", "NaN", "(time() % 7) / 5 - 0.1"]


@mock.patch.object(histcolumns, "MIN_CELLS", 0)
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    members=st.lists(
        st.tuples(
            st.sampled_from(_BOUNDS),
            st.integers(min_value=0, max_value=2),  # which histogram
            st.lists(st.tuples(st.booleans(), _count.filter(lambda v: v is not None)), max_size=30),
        ),
        min_size=1,
        max_size=10,
    ),
    query=st.sampled_from(_QUERIES),
    q=st.sampled_from(_QS),
)
def test_the_engine_gives_the_per_step_answers(
    members: list[tuple[str, int, list[tuple[bool, float]]]], query: str, q: str
) -> None:
    storage = MemoryStorage()
    for index, (le, histogram, samples) in enumerate(members):
        labels = Labels.of(__name__="h_bucket", le=le, h=str(histogram), i=str(index % 2))
        for k, (skip, value) in enumerate(samples):
            # A skipped sample leaves a gap longer than the lookback: the bucket is absent there.
            if not skip:
                storage.add(labels, k * 20_000 + (400_000 if k > 15 else 0), value)
    text = query.format(q=q)
    calls: list[int] = []
    real = histcolumns.prepare

    def counted(*args: object) -> object:
        calls.append(1)
        return real(*args)  # type: ignore[arg-type]

    with mock.patch.object(histcolumns, "prepare", counted):
        fast = _outcome(Engine(storage), text)
    slow = _outcome(Engine(storage, columnar=False), text)
    assert fast == slow, text
    if slow[0]:
        assert calls, "the step-column path did not run"


def _outcome(engine: Engine, text: str) -> tuple[object, ...]:
    """A range query's points, infos and warnings; or its error (e.g. colliding quantiles)."""
    try:
        result = engine.range(text, 0, 1_200_000, 20_000)
    except EvaluationError as exc:
        return ({}, str(exc))
    return (_cells(result), result.infos, result.warnings)


@mock.patch.object(histcolumns, "MIN_CELLS", 0)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    bounds=st.lists(st.sampled_from(_BOUNDS), min_size=1, max_size=6, unique=True),
    data=st.data(),
    query=st.sampled_from(_QUERIES[:3] + _QUERIES[4:6]),
    q=st.sampled_from(_QS),
    batch_cells=st.sampled_from([1, 50, histcolumns.BATCH_CELLS]),
)
def test_histograms_with_the_same_buckets_computed_together_match(
    bounds: list[str], data: st.DataObject, query: str, q: str, batch_cells: int
) -> None:
    # Up to six histograms with the same buckets: laid end to end in one batch (or several).
    storage = MemoryStorage()
    for histogram in range(data.draw(st.integers(min_value=1, max_value=6))):
        for le in bounds:
            labels = Labels.of(__name__="h_bucket", le=le, h=str(histogram))
            samples = data.draw(st.lists(_count, max_size=30))
            for k, value in enumerate(samples):
                if value is not None:
                    storage.add(labels, k * 20_000 + (400_000 if k > 15 else 0), value)
    text = query.format(q=q)
    with mock.patch.object(histcolumns, "BATCH_CELLS", batch_cells):
        fast = _outcome(Engine(storage), text)
    assert fast == _outcome(Engine(storage, columnar=False), text), text


def _histogram(
    storage: MemoryStorage, counts: dict[str, list[float]], step_ms: int, **labels: str
) -> None:
    for le, values in counts.items():
        for k, v in enumerate(values):
            storage.add(Labels.of(__name__="h_bucket", le=le, **labels), k * step_ms, v)


@mock.patch.object(histcolumns, "MIN_CELLS", 0)
def test_a_range_query_reports_forced_monotonicity_as_the_step_path_does() -> None:
    storage = MemoryStorage()
    clean = {"0.5": [1, 2, 3, 4], "1": [2, 3, 4, 5], "+Inf": [4, 5, 6, 7]}
    _histogram(storage, clean, 60_000, job="a")
    query = "histogram_quantile(0.5, h_bucket)"
    assert Engine(storage).range(query, 0, 180_000, 20_000).infos == []
    # A second histogram with the same buckets, computed in the same batch: at
    # its third step the 1 bucket holds more than the +Inf one.
    _histogram(
        storage, {"0.5": [1, 2, 3, 4], "1": [2, 3, 9, 5], "+Inf": [4, 5, 6, 7]}, 60_000, job="b"
    )
    fast = Engine(storage).range(query, 0, 180_000, 20_000)
    assert fast.infos == Engine(storage, columnar=False).range(query, 0, 180_000, 20_000).infos
    assert any("fixed for monotonicity" in info for info in fast.infos)


@mock.patch.object(histcolumns, "MIN_CELLS", 0)
def test_the_result_rows_carry_their_step_column() -> None:
    storage = MemoryStorage()
    _histogram(storage, {"1": [1, 2], "2": [3, 4], "+Inf": [4, 8]}, 300_000)
    text = "histogram_quantile(0.5, h_bucket)"
    expr = parse(text)
    ts = list(range(0, 570_001, 30_000))
    ev = Evaluator(Engine(storage), expr, text, start_ms=0, end_ms=ts[-1], step_ms=30_000)
    out = ev.eval(expr, ts)
    assert isinstance(out, list)
    (row,) = out
    values, valid, full = row.column
    assert full
    assert valid.all()
    # rank 2 of 4 in (1, 2] at first (1 + 1 * 1/2), rank 4 of 8 at 2 (exactly 2) after 300 s.
    assert row.vals[0] == 1.5
    assert row.vals[-1] == 2.0
    assert values.tolist() == row.vals


@pytest.mark.parametrize("steps", [1, 8])
def test_short_queries_stay_step_by_step(steps: int) -> None:
    # One step, or two bucket series over 8 steps: below MIN_CELLS.
    storage = MemoryStorage()
    _histogram(storage, {"1": [1], "+Inf": [2]}, 60_000)
    with mock.patch.object(histcolumns, "prepare") as prepare:
        result = Engine(storage).range(
            "histogram_quantile(0.5, h_bucket)", 0, (steps - 1) * 1000, 1000
        )
    prepare.assert_not_called()
    assert isinstance(result.value, list)
    assert result.value[0].values == [1.0] * steps  # type: ignore[union-attr]
