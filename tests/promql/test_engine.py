"""The evaluator's time semantics, result types, limits and errors."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import EvaluationError, QueryError, QueryLimitError
from soulwatch.promql.ast import Call, MatrixSelector, VectorSelector
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryEngine, Scalar, String
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Matcher, Series
from tests.promql.engine_helpers import every, instant, load, matrix, series, vector


@pytest.fixture
def storage() -> MemoryStorage:
    s = MemoryStorage()
    load(s, series("up", job="api"), every(60, [1, 1, 1, 1, 1]))  # 0s..240s
    return s


def test_engine_implements_the_query_engine_protocol(storage: MemoryStorage) -> None:
    assert isinstance(Engine(storage), QueryEngine)


def test_lookback_window_is_left_open_five_minutes(storage: MemoryStorage) -> None:
    # Last sample at 240 s: visible until 540 s - 1 ms, gone at exactly 540 s.
    assert vector(instant(storage, "up", 539.999)) == {'up{job="api"}': 1.0}
    assert vector(instant(storage, "up", 540)) == {}


def test_custom_lookback_delta(storage: MemoryStorage) -> None:
    assert vector(instant(storage, "up", 300, lookback_delta_ms=30_000)) == {}
    assert vector(instant(storage, "up", 260, lookback_delta_ms=30_000)) == {'up{job="api"}': 1}


def test_staleness_marker_ends_series_at_once(storage: MemoryStorage) -> None:
    storage.add(series("up", job="api"), 300_000, STALE_NAN)
    assert vector(instant(storage, "up", 299)) == {'up{job="api"}': 1.0}
    assert vector(instant(storage, "up", 300)) == {}
    # Range functions never see the marker as a value.
    assert vector(instant(storage, "count_over_time(up[10m])", 300)) == {'{job="api"}': 5.0}


def test_offset_and_at_modifiers(storage: MemoryStorage) -> None:
    storage.add(series("up", job="api"), 600_000, 7)
    assert vector(instant(storage, "up offset 6m", 600)) == {'up{job="api"}': 1.0}
    assert vector(instant(storage, "up @ 600", 60)) == {'up{job="api"}': 7.0}
    assert vector(instant(storage, "up @ 600 offset 5m", 900)) == {'up{job="api"}': 1.0}
    assert vector(instant(storage, "up @ 600 offset 11m", 900)) == {}


def test_range_query_start_and_end_pin_to_the_query_bounds(storage: MemoryStorage) -> None:
    storage.add(series("up", job="api"), 120_000, 5)
    result = Engine(storage).range("up @ start() + up @ end()", 120_000, 240_000, 60_000)
    assert matrix(result) == {'{job="api"}': [(120, 6.0), (180, 6.0), (240, 6.0)]}


def test_range_query_returns_matrix_even_when_empty(storage: MemoryStorage) -> None:
    result = Engine(storage).range("nothing_here", 0, 60_000, 15_000)
    assert result.value == []
    assert result.result_type == "matrix"
    instant_empty = Engine(storage).instant("nothing_here", 0)
    assert instant_empty.result_type == "vector"


def test_range_query_of_scalar_is_one_unlabelled_series(storage: MemoryStorage) -> None:
    result = Engine(storage).range("time() * 2", 0, 30_000, 15_000)
    assert matrix(result) == {"{}": [(0, 0.0), (15, 30.0), (30, 60.0)]}


def test_instant_query_of_scalar_string_and_range_selector(storage: MemoryStorage) -> None:
    engine = Engine(storage)
    assert engine.instant("1 + 2", 5_000).value == Scalar(5_000, 3.0)
    assert engine.instant('"hi"', 5_000).value == String(5_000, "hi")
    result = engine.instant("up[2m]", 240_000)
    assert result.result_type == "matrix"
    # (120 s, 240 s]: the sample at 120 s is outside the left-open window.
    assert matrix(result) == {'up{job="api"}': [(180, 1.0), (240, 1.0)]}


def test_accepts_a_syntax_tree(storage: MemoryStorage) -> None:
    selector = VectorSelector("up", (Matcher.equal("__name__", "up"),))
    expr = Call("count_over_time", (MatrixSelector(selector, 300_000),))
    assert vector(Engine(storage).instant(expr, 240_000)) == {'{job="api"}': 5.0}


def test_subquery_steps_align_to_absolute_multiples_of_the_step() -> None:
    s = MemoryStorage()
    load(s, series("x"), every(10, range(100)))  # value = t/10 at t = 0, 10, ..., 990
    # At 95 s the 30s-step subquery over (35, 95] evaluates at 60 and 90 only.
    assert vector(instant(s, "count_over_time(x[1m:30s])", 95)) == {"{}": 2.0}
    assert vector(instant(s, "max_over_time(x[1m:30s])", 95)) == {"{}": 9.0}


def test_range_query_series_are_sorted_by_labels() -> None:
    s = MemoryStorage()
    for job in ("c", "a", "b"):
        load(s, series("up", job=job), every(60, [1, 1]))
    result = Engine(s).range("up", 0, 60_000, 60_000)
    assert isinstance(result.value, list)
    assert [str(x.labels) for x in result.value] == [
        'up{job="a"}',
        'up{job="b"}',
        'up{job="c"}',
    ]


def test_sample_limit_stops_a_query_with_a_clear_error() -> None:
    s = MemoryStorage()
    for i in range(20):
        load(s, series("busy", i=str(i)), every(15, [1.0] * 40))
    with pytest.raises(QueryLimitError, match="too many samples"):
        instant(s, "sum(count_over_time(busy[10m]))", 600, max_samples=100)
    assert vector(instant(s, "sum(count_over_time(busy[10m]))", 600, max_samples=10_000)) == {
        "{}": 20 * 39.0  # the sample at 0 s is outside the left-open window (0, 600]
    }


def test_sample_limit_counts_the_steps_a_range_query_holds() -> None:
    s = MemoryStorage()
    for i in range(5):
        load(s, series("up", i=str(i)), every(15, [1.0] * 4))
    engine = Engine(s, max_samples=1_000, lookback_delta_ms=10**9)
    # 20 samples loaded, but 5 series x 1,001 steps held in memory.
    with pytest.raises(QueryLimitError, match="too many samples"):
        engine.range("up", 0, 1_000_000, 1_000)
    assert len(engine.range("up", 0, 100_000, 1_000).value) == 5


class _SlowStorage:
    """A storage whose every select takes a simulated minute."""

    def __init__(self, inner: MemoryStorage, clock: SimulatedClock) -> None:
        self.inner = inner
        self.clock = clock

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        self.clock.set_time(self.clock.time() + 60)
        return self.inner.select(matchers, mint_ms, maxt_ms)

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_timeout_stops_a_query(storage: MemoryStorage, clock: SimulatedClock) -> None:
    engine = Engine(_SlowStorage(storage, clock), timeout_s=90, clock=clock)  # type: ignore[arg-type]
    with pytest.raises(QueryLimitError, match="timed out"):
        engine.instant("up + up offset 1m + up offset 2m", 240_000)
    assert vector(engine.instant("up", 240_000)) == {'up{job="api"}': 1.0}


def test_bad_range_query_arguments(storage: MemoryStorage) -> None:
    engine = Engine(storage)
    with pytest.raises(QueryError, match="zero or negative"):
        engine.range("up", 0, 60_000, 0)
    with pytest.raises(QueryError, match="end timestamp must not be before start"):
        engine.range("up", 60_000, 0, 15_000)
    with pytest.raises(QueryError, match='invalid expression type "string"'):
        engine.range('"text"', 0, 60_000, 15_000)


def test_duplicate_labelsets_after_name_removal_fail() -> None:
    s = MemoryStorage()
    load(s, series("a_total", job="x"), every(60, [1, 2, 3]))
    load(s, series("b_total", job="x"), every(60, [1, 2, 3]))
    with pytest.raises(EvaluationError, match="same labelset"):
        instant(s, 'rate({__name__=~".+_total"}[5m])', 120)
    query = 'label_replace(rate({__name__=~".+_total"}[5m]), "src", "$1", "__name__", "(.*)")'
    # By default (Prometheus 3) rate() drops the name at once: the collision comes first.
    with pytest.raises(EvaluationError, match="same labelset"):
        instant(s, query, 120)
    # With delayed name removal a later label_replace can still read __name__.
    result = instant(s, query, 120, features=["promql-delayed-name-removal"])
    assert set(vector(result)) == {'{job="x", src="a_total"}', '{job="x", src="b_total"}'}


def test_rate_on_a_gauge_name_carries_an_info_with_position() -> None:
    s = MemoryStorage()
    load(s, series("queue_depth"), every(15, [1, 2, 3, 4, 5]))
    result = instant(s, "rate(queue_depth[1m])", 60)
    assert result.infos == [
        "PromQL info: metric might not be a counter, name does not end in "
        '_total/_sum/_count/_bucket: "queue_depth" (1:6)'
    ]
    assert instant(s, "rate(queue_depth[1m])", 60).warnings == []


def test_nan_values_are_samples_not_staleness() -> None:
    s = MemoryStorage()
    load(s, series("g"), [(0, math.nan)])
    got = vector(instant(s, "g", 10))
    assert list(got) == ["g"]
    assert math.isnan(got["g"])
