"""Binary operators over step-columns give the step-by-step code's answers, bit for bit.

Random series (gaps, NaN, +/-Inf, signed zeros, staleness markers, small
integers so that ``==`` holds now and then) are combined by every operator
kind through both paths: ``Engine(columnar=False)`` is the reference. The
operands are raw selectors (lists of Python floats), range functions and
aggregations (columns), so both kinds of input and their mixes are met.
Errors (duplicate series, ambiguous matches) must be the same errors.
"""

from __future__ import annotations

import math
import struct
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from soulwatch.exceptions import EvaluationError
from soulwatch.promql import binops, columnar
from soulwatch.promql.aggregations import SIMPLE, sum_values
from soulwatch.promql.engine import Engine
from soulwatch.promql.stepvec import StepSeries
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels

pytestmark = pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")

_value = st.one_of(
    st.integers(min_value=-3, max_value=3).map(float),
    st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
    # Moderate values: ``^`` and ``atan2`` of these are finite and exercise the last bit.
    st.floats(min_value=-30, max_value=30, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, STALE_NAN, 1e308, 5e-324]),
)
_samples = st.lists(st.tuples(st.integers(min_value=1, max_value=120_000), _value), max_size=40)
#: One series: its ``g`` and ``k`` labels (shared by some, so matching can group) and samples.
_series = st.tuples(st.sampled_from("01"), st.sampled_from("xy"), _samples)
_side = st.lists(_series, min_size=0, max_size=5)

#: Operands: a raw selector (Python floats), a range function and an aggregation (columns).
_FORMS = [
    "{m}",
    "rate({m}[2m])",
    "sum by (g, i) ({m})",
    "-{m}",
    "max_over_time({m}[90s])",
    # Two metrics whose other labels agree: once an operator drops the name they collide.
    '{{__name__=~"{m}.*"}}',
]
_ARITH = ["+", "-", "*", "/", "%", "^", "atan2"]
_COMPARE = ["==", "!=", ">", "<", ">=", "<="]
_SCALARS = ["0", "-0", "2", "0.5", "-3", "NaN", "Inf", "-Inf", "(time() % 5) - 2", "1e308"]
_MATCHING = [
    "",
    " on (g)",
    " on (i)",
    " ignoring (i)",
    " ignoring (k)",
    " on (g) group_left (k)",
    " on (g) group_right (k)",
    " ignoring (i, k) group_left",
    " on (i) group_right",
    " on ()",
]


def _storage(
    a: list[tuple[str, str, list[tuple[int, float]]]],
    b: list[tuple[str, str, list[tuple[int, float]]]],
) -> MemoryStorage:
    storage = MemoryStorage()
    for name, side in (("a", a), ("b", b)):
        for index, (g, k, samples) in enumerate(side):
            # a{i="0"}, a2{i="0"}, a{i="1"}, ...: the plain name selects unique series.
            metric = name if index % 2 == 0 else f"{name}2"
            labels = Labels.of(__name__=metric, i=str(index // 2), g=g, k=k)
            t = 0
            for gap, value in samples:
                t += gap
                storage.add(labels, t, value)
    return storage


def _cells(result: QueryResult) -> dict[str, list[tuple[int, bytes | str]]]:
    """Every point; NaN as one token, other floats by their bits (so -0.0 != 0.0)."""
    assert isinstance(result.value, list)
    out = {}
    for s in result.value:
        points = [
            (t, "NaN" if math.isnan(v) else struct.pack("<d", v))
            for t, v in zip(s.timestamps, s.values, strict=True)  # type: ignore[union-attr]
        ]
        out[str(s.labels)] = points  # type: ignore[union-attr]
    return out


def _run(engine: Engine, query: str, step_s: int) -> object:
    """The result's cells, or the error's text: both paths must fail alike."""
    try:
        return _cells(engine.range(query, 0, 1_500_000, step_s * 1000))
    except EvaluationError as exc:
        return f"error: {exc}"


def _both(
    storage: MemoryStorage, query: str, step_s: int, spy: str, where: object = None
) -> tuple[object, object, int]:
    """Both paths' answers, and how often the column path's ``spy`` function ran."""
    where = binops.colbinops if where is None else where
    calls = []
    real = getattr(where, spy)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return real(*args, **kwargs)

    with mock.patch.object(where, spy, counted):
        fast = _run(Engine(storage, columnar_min_windows=0), query, step_s)
    slow = _run(Engine(storage, columnar=False), query, step_s)
    return fast, slow, len(calls)


_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@_SETTINGS
@given(
    a=_side,
    form=st.sampled_from(_FORMS),
    op=st.sampled_from(_ARITH + _COMPARE),
    use_bool=st.booleans(),
    scalar=st.sampled_from(_SCALARS),
    scalar_first=st.booleans(),
    step_s=st.sampled_from([15, 30, 60]),
)
def test_vector_scalar_over_columns_matches_the_step_code(
    *,
    a: list[tuple[str, str, list[tuple[int, float]]]],
    form: str,
    op: str,
    use_bool: bool,
    scalar: str,
    scalar_first: bool,
    step_s: int,
) -> None:
    storage = _storage(a, [])
    vec = form.format(m="a")
    modifier = " bool" if use_bool and op in _COMPARE else ""
    query = f"{scalar} {op}{modifier} {vec}" if scalar_first else f"{vec} {op}{modifier} {scalar}"
    fast, slow, calls = _both(storage, query, step_s, "vector_scalar")
    # ``-a ^ 2`` is ``-(a ^ 2)``; a scalar on the left of a unary minus may add a call.
    assert calls >= 1, "the column path did not run"
    assert fast == slow, query


@_SETTINGS
@given(
    a=_side,
    b=_side,
    lhs=st.sampled_from(_FORMS),
    rhs=st.sampled_from(_FORMS),
    op=st.sampled_from(_ARITH + _COMPARE),
    use_bool=st.booleans(),
    matching=st.sampled_from(_MATCHING),
    step_s=st.sampled_from([15, 30, 60]),
)
def test_vector_vector_over_columns_matches_the_step_code(
    *,
    a: list[tuple[str, str, list[tuple[int, float]]]],
    b: list[tuple[str, str, list[tuple[int, float]]]],
    lhs: str,
    rhs: str,
    op: str,
    use_bool: bool,
    matching: str,
    step_s: int,
) -> None:
    storage = _storage(a, b)
    modifier = " bool" if use_bool and op in _COMPARE else ""
    query = f"{lhs.format(m='a')} {op}{modifier}{matching} {rhs.format(m='b')}"
    fast, slow, calls = _both(storage, query, step_s, "vector_vector")
    assert fast == slow, query
    if isinstance(slow, dict) and slow:
        assert calls == 1, "the column path did not run"


@_SETTINGS
@given(
    a=_side,
    b=_side,
    lhs=st.sampled_from(_FORMS),
    rhs=st.sampled_from(_FORMS),
    op=st.sampled_from(["and", "or", "unless"]),
    matching=st.sampled_from(["", " on (g)", " ignoring (i)", " on (k)", " on ()"]),
    step_s=st.sampled_from([15, 30, 60]),
)
def test_set_operators_over_columns_match_the_step_code(
    *,
    a: list[tuple[str, str, list[tuple[int, float]]]],
    b: list[tuple[str, str, list[tuple[int, float]]]],
    lhs: str,
    rhs: str,
    op: str,
    matching: str,
    step_s: int,
) -> None:
    storage = _storage(a, b)
    query = f"{lhs.format(m='a')} {op}{matching} {rhs.format(m='b')}"
    fast, slow, calls = _both(storage, query, step_s, "_set_op_columns", binops)
    assert fast == slow, query
    assert calls == 1, "the column path did not run"


def test_ratio_of_two_aggregations_stays_on_columns() -> None:
    # The 5xx ratio of a dashboard: sum by (job) of rates, divided; a job
    # with no errors divides 0 by its traffic, a silent job gives NaN (0/0).
    storage = MemoryStorage()
    for job, status, per_scrape in [
        ("api", "200", 10.0),
        ("api", "500", 1.0),
        ("web", "200", 5.0),
        ("idle", "200", 0.0),
        ("idle", "500", 0.0),
    ]:
        labels = Labels.of(__name__="http_requests_total", job=job, status=status)
        for k in range(121):
            storage.add(labels, k * 15_000, per_scrape * k)
    query = (
        'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
        " / sum by (job) (rate(http_requests_total[5m]))"
    )
    real = binops.colbinops.vector_vector
    with mock.patch.object(binops.colbinops, "vector_vector", wraps=real) as spy:
        result = Engine(storage).range(query, 600_000, 1_800_000, 60_000)
    spy.assert_called_once()
    # Both sides reached the operator as columns, not as Python lists.
    one_groups, many_groups = spy.call_args.args[1:3]
    sides = [*one_groups.values(), *many_groups.values()]
    assert sides
    assert all(s.column is not None for group in sides for s in group)
    values = {s.labels.get("job"): s.values for s in result.value}  # type: ignore[union-attr]
    assert set(values) == {"api", "idle"}
    assert values["api"] == pytest.approx([1 / 11] * 21)
    assert all(math.isnan(v) for v in values["idle"])
    assert _cells(result) == _cells(
        Engine(storage, columnar=False).range(query, 600_000, 1_800_000, 60_000)
    )


def test_duplicate_series_on_the_one_side_name_the_first_pair() -> None:
    storage = MemoryStorage()
    for i in range(3):
        for k in range(41):
            storage.add(Labels.of(__name__="b", i=str(i), g="0"), k * 15_000, 1.0)
    for k in range(41):
        storage.add(Labels.of(__name__="a", g="0"), k * 15_000, 2.0)
    with pytest.raises(
        EvaluationError,
        match=r'found duplicate series for the match group \{g="0"\} on the right hand-side',
    ) as fast:
        Engine(storage).range("a / on (g) b", 0, 600_000, 15_000)
    with pytest.raises(EvaluationError) as slow:
        Engine(storage, columnar=False).range("a / on (g) b", 0, 600_000, 15_000)
    assert str(fast.value) == str(slow.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    values=st.lists(
        st.tuples(
            st.floats(min_value=-40, max_value=40, allow_nan=False),
            st.floats(min_value=-6, max_value=6, allow_nan=False),
        ),
        min_size=60,
        max_size=60,
    ),
    op=st.sampled_from(["^", "atan2", "/", "%"]),
)
def test_power_and_atan2_agree_to_the_last_bit(values: list[tuple[float, float]], op: str) -> None:
    # numpy's own power/arctan2 differ from the C library's in the last bit
    # for a few percent of such values; the column path must not.
    storage = MemoryStorage()
    for k, (x, y) in enumerate(values):
        storage.add(Labels.of(__name__="x"), k * 15_000, x)
        storage.add(Labels.of(__name__="y"), k * 15_000, y)
    for query in (f"x {op} y", f"x {op} 1.7", f"-2.5 {op} y"):
        fast, slow, calls = _both(storage, query, 15, "arith")
        assert calls == 1
        assert fast == slow, query


@pytest.mark.parametrize("overlap", [False, True])
@pytest.mark.parametrize(
    "query",
    [
        '{__name__=~"a.*"} + on (i) group_left b',
        'b - on (i) group_right {__name__=~"a.*"}',
        '{__name__=~"a.*"} * b',
        '{__name__=~"a.*"} > bool b',
        '{__name__=~"a.*"} or b',
    ],
)
def test_results_with_the_same_labels_merge_or_fail_alike(query: str, overlap: bool) -> None:
    # a and a2 differ only by name: once it goes, their results share a label
    # set. Disjoint in time they merge into one series; at a shared step it is an error.
    storage = MemoryStorage()
    for k in range(80):
        storage.add(Labels.of(__name__="b", i="0"), k * 15_000, 2.0)
        if k < 40 or overlap:
            storage.add(Labels.of(__name__="a", i="0"), k * 15_000, float(k))
        if k >= 60 or (overlap and k > 30):
            storage.add(Labels.of(__name__="a2", i="0"), k * 15_000, float(-k))
    fast, slow, _ = _both(storage, query, 15, "arith")
    assert fast == slow, query
    if not overlap:
        assert isinstance(fast, dict)
        assert fast


_number = st.one_of(
    st.sampled_from([0.0, -0.0, math.inf, -math.inf, math.nan, 1e308, -1e308, 1.0, -1.0, 1e-300]),
    st.floats(min_value=-1e20, max_value=1e20, allow_nan=False),
)


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.lists(
            st.lists(st.one_of(st.none(), _number), min_size=n, max_size=n)
            | st.lists(_number, min_size=n, max_size=n),
            min_size=1,
            max_size=14,
        )
    ),
    as_columns=st.booleans(),
    block=st.sampled_from([1, 3, 1 << 17]),
)
def test_sum_over_columns_is_the_member_by_member_kahan_sum(
    rows: list[list[float | None]], as_columns: bool, block: int
) -> None:
    # The prefix-sum form of the compensated sum against the loop Prometheus's
    # sum follows, bit for bit: signed zeros, overflow to infinity, NaN, gaps;
    # members as lists or as columns (all of them full: no masking at all).
    from soulwatch.promql.stepcols import list_column  # numpy: imported once the test runs

    n = len(rows[0])
    if as_columns:
        members = [StepSeries.of_column(Labels(), *list_column(r)) for r in rows]
    else:
        members = [StepSeries(Labels(), list(r)) for r in rows]
    with mock.patch.object(columnar, "BATCH_CELLS", block):
        (got,) = columnar.aggregate("sum", {Labels(): members}, n) or [None]
    want = [
        sum_values(present) if (present := [r[i] for r in rows if r[i] is not None]) else None
        for i in range(n)
    ]
    if all(w is None for w in want):
        assert got is None
        return
    assert got is not None
    assert [_bits(v) for v in got.vals] == [_bits(v) for v in want]


@settings(max_examples=300, deadline=None)
@given(
    rows=st.integers(min_value=1, max_value=8).flatmap(
        lambda n: st.lists(
            st.lists(st.one_of(st.none(), _number), min_size=n, max_size=n),
            min_size=1,
            max_size=10,
        )
    ),
    op=st.sampled_from(["min", "max"]),
)
def test_min_and_max_over_columns_are_the_in_order_fold(
    rows: list[list[float | None]], op: str
) -> None:
    # A NaN so far gives way to the next value; of 0.0 and -0.0 the first stays.
    n = len(rows[0])
    members = [StepSeries(Labels(), list(r)) for r in rows]
    (got,) = columnar.aggregate(op, {Labels(): members}, n) or [None]
    fold = SIMPLE[op]
    want = [
        fold(present) if (present := [r[i] for r in rows if r[i] is not None]) else None
        for i in range(n)
    ]
    if all(w is None for w in want):
        assert got is None
        return
    assert got is not None
    assert [_bits(v) for v in got.vals] == [_bits(v) for v in want]


def _bits(value: float | None) -> object:
    if value is None or math.isnan(value):
        return value if value is None else "NaN"
    return struct.pack("<d", value)
