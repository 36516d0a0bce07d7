"""Aggregation operators with by/without and their parameters."""

from __future__ import annotations

import math

import pytest

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import Sample
from soulwatch.tsdb.memory import MemoryStorage
from tests.promql.engine_helpers import instant, load, series, vector


@pytest.fixture
def storage() -> MemoryStorage:
    s = MemoryStorage()
    for i, (job, value) in enumerate([("api", 1), ("api", 3), ("api", 8), ("web", 4)]):
        load(s, series("load", job=job, instance=str(i)), [(0, value)])
    return s


def test_sum_avg_count_by_and_without(storage: MemoryStorage) -> None:
    assert vector(instant(storage, "sum by (job) (load)", 0)) == {
        '{job="api"}': 12.0,
        '{job="web"}': 4.0,
    }
    assert vector(instant(storage, "avg without (instance) (load)", 0)) == {
        '{job="api"}': 4.0,
        '{job="web"}': 4.0,
    }
    assert vector(instant(storage, "count(load)", 0)) == {"{}": 4.0}
    assert vector(instant(storage, "group by (job) (load)", 0)) == {
        '{job="api"}': 1.0,
        '{job="web"}': 1.0,
    }


def test_min_max_stddev_stdvar(storage: MemoryStorage) -> None:
    assert vector(instant(storage, "min(load)", 0)) == {"{}": 1.0}
    assert vector(instant(storage, "max(load)", 0)) == {"{}": 8.0}
    got = vector(instant(storage, 'stdvar(load{job="api"})', 0))["{}"]
    assert got == pytest.approx(((1 - 4) ** 2 + (3 - 4) ** 2 + (8 - 4) ** 2) / 3)
    assert vector(instant(storage, 'stddev(load{job="api"})', 0))["{}"] == pytest.approx(
        math.sqrt(26 / 3)
    )


def test_sum_compensates_float_error() -> None:
    s = MemoryStorage()
    for i, v in enumerate([1e100, 1.0, -1e100]):
        load(s, series("x", i=str(i)), [(0, v)])
    assert vector(instant(s, "sum(x)", 0)) == {"{}": 1.0}


def test_topk_and_bottomk_keep_labels_and_order(storage: MemoryStorage) -> None:
    result = instant(storage, "topk(2, load)", 0)
    assert isinstance(result.value, list)
    assert [(str(s.labels), s.value) for s in result.value if isinstance(s, Sample)] == [
        ('load{instance="2", job="api"}', 8.0),
        ('load{instance="3", job="web"}', 4.0),
    ]
    assert vector(instant(storage, "bottomk by (job) (1, load)", 0)) == {
        'load{instance="0", job="api"}': 1.0,
        'load{instance="3", job="web"}': 4.0,
    }


def test_topk_with_nan_parameter_fails(storage: MemoryStorage) -> None:
    with pytest.raises(EvaluationError, match="Parameter value is NaN"):
        instant(storage, "topk(NaN, load)", 0)


def test_quantile_interpolates_and_warns_out_of_range(storage: MemoryStorage) -> None:
    assert vector(instant(storage, 'quantile(0.5, load{job="api"})', 0)) == {"{}": 3.0}
    assert vector(instant(storage, 'quantile(0.75, load{job="api"})', 0)) == {"{}": 5.5}
    result = instant(storage, "quantile(2, load)", 0)
    assert vector(result) == {"{}": math.inf}
    assert result.warnings == [
        "PromQL warning: quantile value should be between 0 and 1, got 2 (1:10)"
    ]


def test_count_values_formats_values_like_go(storage: MemoryStorage) -> None:
    load(storage, series("load", job="web", instance="9"), [(0, 0.5)])
    assert vector(instant(storage, 'count_values("v", load)', 0)) == {
        '{v="1"}': 1.0,
        '{v="3"}': 1.0,
        '{v="8"}': 1.0,
        '{v="4"}': 1.0,
        '{v="0.5"}': 1.0,
    }


def test_limitk_and_limit_ratio_split_series_deterministically(storage: MemoryStorage) -> None:
    assert len(vector(instant(storage, "limitk(2, load)", 0))) == 2
    half = set(vector(instant(storage, "limit_ratio(0.5, load)", 0)))
    other = set(vector(instant(storage, "limit_ratio(-0.5, load)", 0)))
    assert half.isdisjoint(other)
    assert len(half | other) == 4
    assert half == set(vector(instant(storage, "limit_ratio(0.5, load)", 0)))


def test_grouping_by_name_ignores_a_name_pending_removal() -> None:
    s = MemoryStorage()
    load(s, series("a_total", job="x"), [(0, 0), (60, 60)])
    assert vector(instant(s, "sum by (__name__) (a_total)", 60)) == {"a_total": 60.0}
    # 60 over the 300 s window (the counter starts at 0, so no extrapolation).
    assert vector(instant(s, "sum by (__name__) (rate(a_total[5m]))", 60)) == {
        "{}": pytest.approx(0.2)
    }


def test_stddev_of_an_overflowing_variance_is_nan_not_an_error() -> None:
    # Welford's sums of +/-1.7e308 end at a variance of -Inf; Go's Sqrt gives NaN.
    s = MemoryStorage()
    for i, value in enumerate([1.7e308, -1.7e308]):
        load(s, series("huge", i=str(i)), [(0, value), (15, value)])
    assert vector(instant(s, "stdvar(huge)", 15)) == {"{}": -math.inf}
    (stddev,) = vector(instant(s, "stddev(huge)", 15)).values()
    assert math.isnan(stddev)
    load(s, series("swing"), [(0, 1.7e308), (15, -1.7e308)])
    (over_time,) = vector(instant(s, "stddev_over_time(swing[1m])", 15)).values()
    assert math.isnan(over_time)


def _welford(values: list[float]) -> float:
    # Prometheus 3's stdvar aggregation (promql/engine.go): no compensation.
    mean, variance, count = values[0], 0.0, 1.0
    for f in values[1:]:
        count += 1
        delta = f - mean
        mean += delta / count
        variance += delta * (f - mean)
    return variance / count


@pytest.mark.parametrize("columnar", [False, True])
def test_stdvar_aggregation_is_uncompensated_as_in_prometheus(columnar: bool) -> None:
    # Compensated sums (as stdvar_over_time uses) end one ulp away on these values.
    values = [0.1, 2e15, 123456.789, 1.0]
    s = MemoryStorage()
    for i, value in enumerate(values):
        load(s, series("spread", i=str(i)), [(0, value), (15, value)])
    result = Engine(s, columnar=columnar).range("stdvar(spread)", 0, 15_000, 15_000)
    assert result.value[0].values == [_welford(values)] * 2  # type: ignore[union-attr]
