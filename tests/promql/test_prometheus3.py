"""Where soulwatch answered differently from Prometheus 3, each with Prometheus's answer.

Every expected value here is what Prometheus 3 returns for the same data
(its own test scripts hold the same cases, see docs/conformance.md).
"""

from __future__ import annotations

import math

import pytest

from soulwatch.exceptions import EvaluationError, ParseError
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.memory import MemoryStorage
from tests.promql.engine_helpers import every, instant, load, series, vector


def _histogram(storage: MemoryStorage, name: str, counts: dict[str, float], **labels: str) -> None:
    for le, count in counts.items():
        load(storage, series(name, le=le, **labels), [(0, count)])


def test_histogram_quantile_zero_is_nan_when_the_first_bucket_is_empty() -> None:
    s = MemoryStorage()
    _histogram(s, "h_bucket", {"0.1": 0, "0.5": 0, "+Inf": 0}, job="a")
    _histogram(s, "h_bucket", {"0.1": 0, "0.5": 3, "+Inf": 4}, job="b")
    got = vector(instant(s, "histogram_quantile(0, h_bucket)", 0))
    # job="a": no observations; job="b": rank 0 falls in an empty first bucket (0/0).
    assert math.isnan(got['{job="a"}'])
    assert math.isnan(got['{job="b"}'])
    assert vector(instant(s, "histogram_quantile(0.5, h_bucket)", 0))['{job="b"}'] == 0.1 + 0.4 * (
        2 / 3
    )


def test_histograms_colliding_after_the_name_is_dropped_are_an_error() -> None:
    s = MemoryStorage()
    _histogram(s, "a_bucket", {"1": 1, "+Inf": 2}, job="x")
    _histogram(s, "b_bucket", {"1": 1, "+Inf": 2}, job="x")
    with pytest.raises(EvaluationError, match="cannot contain metrics with the same labelset"):
        instant(s, 'histogram_quantile(0.5, {__name__=~"a_bucket|b_bucket"})', 0)
    # One histogram alone is fine.
    assert vector(instant(s, "histogram_quantile(0.5, a_bucket)", 0)) == {'{job="x"}': 1.0}


@pytest.mark.parametrize(("at", "expected"), [("100s", 10.0), ("1m40s", 10.0), ("1m", 6.0)])
def test_at_accepts_a_duration_since_the_epoch(at: str, expected: float) -> None:
    s = MemoryStorage()
    load(s, series("metric"), every(10, range(30)))
    assert vector(instant(s, f"metric @ {at}", 1000)) == {"metric": expected}
    assert vector(instant(s, f"sum_over_time(metric[20s] @ {at})", 1000)) == {
        "{}": expected + expected - 1
    }


def test_timestamp_with_at_ignores_the_offset() -> None:
    s = MemoryStorage()
    load(s, series("v"), every(10, range(30)))
    # Prometheus 3 reads the sample at the @ time: the offset does not move it.
    assert vector(instant(s, "timestamp(v @ 100 offset 50s)", 1000)) == {"{}": 100.0}
    # Without @ the offset applies as usual.
    assert vector(instant(s, "timestamp(v offset 50s)", 200)) == {"{}": 150.0}


def test_an_empty_range_vector_result_is_a_matrix() -> None:
    s = MemoryStorage()
    load(s, series("v"), every(10, range(3)))
    result = instant(s, "nothing[5m]", 100)
    assert result.value == []
    assert result.result_type == "matrix"
    assert instant(s, "v[5m]", 20).result_type == "matrix"
    assert instant(s, "nothing", 100).result_type == "vector"


def test_a_range_query_over_a_range_vector_is_a_bad_query() -> None:
    engine = Engine(MemoryStorage())
    # A ParseError is what the HTTP API answers with 400 bad_data, before reading data.
    with pytest.raises(ParseError) as caught:
        engine.range("v[5m]", 0, 60_000, 15_000)
    assert str(caught.value) == (
        'invalid expression type "range vector" for range query, must be Scalar or instant Vector'
    )
    with pytest.raises(ParseError, match='invalid expression type "string"'):
        engine.range('"text"', 0, 60_000, 15_000)


def test_histogram_quantiles_labels_each_quantile() -> None:
    s = MemoryStorage()
    _histogram(s, "h_bucket", {"1": 2, "2": 4, "+Inf": 4}, job="x")
    got = vector(instant(s, 'histogram_quantiles(h_bucket, "q", 0.5, 1, 0.25)', 0))
    assert got == {
        '{job="x", q="0.5"}': 1.0,
        '{job="x", q="1.0"}': 2.0,
        '{job="x", q="0.25"}': 0.5,
    }
    # Overwriting an existing label so that results collide is an error, as in Prometheus.
    with pytest.raises(EvaluationError, match="same labelset"):
        instant(s, 'histogram_quantiles(h_bucket, "job", 0.5, 0.5)', 0)


def test_name_removal_is_immediate_unless_the_feature_is_enabled() -> None:
    s = MemoryStorage()
    load(s, series("metric_total", env="1"), every(60, range(0, 11)))
    load(s, series("metric_total", env="2"), every(60, range(0, 31, 3)))
    query = (
        'label_replace(sum by (__name__) (rate(metric_total{env="2"}[5m])), '
        '"__name__", "$1", "__name__", "(.+)")'
    )
    # Prometheus 3 by default: rate() has already dropped the name.
    assert vector(instant(s, query, 600)) == {"{}": 0.05}
    # --enable-feature=promql-delayed-name-removal: label_replace still sees it.
    delayed = instant(s, query, 600, features=["promql-delayed-name-removal"])
    assert vector(delayed) == {"metric_total": 0.05}
    # Two series that differ only by name collide as soon as rate() drops it;
    # with the removal delayed, the sum sees them apart.
    load(s, series("another_total", env="1"), every(60, range(0, 11)))
    by_env = 'sum by (env) (rate({env="1"}[10m]))'
    with pytest.raises(EvaluationError, match="same labelset"):
        instant(s, by_env, 600)
    delayed = instant(s, by_env, 600, features=["promql-delayed-name-removal"])
    assert vector(delayed) == {'{env="1"}': pytest.approx(2 / 60)}


def test_type_and_unit_labels_go_with_the_name_when_enabled() -> None:
    s = MemoryStorage()
    load(s, series("req_total", __type__="counter", __unit__="request", job="a"), [(0, 5)])
    assert vector(instant(s, "-req_total", 0)) == {
        '{__type__="counter", __unit__="request", job="a"}': -5.0
    }
    assert vector(instant(s, "-req_total", 0, features=["type-and-unit-labels"])) == {
        '{job="a"}': -5.0
    }


def test_unknown_feature_names_are_refused() -> None:
    with pytest.raises(Exception, match="unknown PromQL feature 'delayed-names'"):
        Engine(MemoryStorage(), features=["delayed-names"])


def test_info_adds_the_data_labels_of_matching_info_series() -> None:
    s = MemoryStorage()
    load(s, series("up", instance="a", job="1"), every(60, [1, 1, 1]))
    load(s, series("up", instance="b", job="1"), every(60, [1, 1, 1]))
    load(s, series("target_info", instance="a", job="1", version="v1", region="eu"), [(0, 1)])
    load(s, series("target_info", instance="a", job="1", version="v2", region="eu"), [(90, 1)])
    load(s, series("build_info", instance="a", job="1", commit="abc"), every(60, [1, 1, 1]))

    assert vector(instant(s, "info(up)", 60)) == {
        'up{instance="a", job="1", region="eu", version="v1"}': 1.0,
        'up{instance="b", job="1"}': 1.0,  # no info series: kept as it is
    }
    # The newest matching info series wins.
    assert 'up{instance="a", job="1", region="eu", version="v2"}' in vector(
        instant(s, "info(up)", 120)
    )
    # Only the named data labels; a matcher refusing "" drops series without info.
    assert vector(instant(s, 'info(up, {version=~".+"})', 60)) == {
        'up{instance="a", job="1", version="v1"}': 1.0
    }
    assert vector(instant(s, 'info(up, {version=~".*"})', 60)) == {
        'up{instance="a", job="1", version="v1"}': 1.0,
        'up{instance="b", job="1"}': 1.0,
    }
    assert vector(instant(s, 'info(up{instance="a"}, {__name__="build_info"})', 60)) == {
        'up{commit="abc", instance="a", job="1"}': 1.0
    }
    # The info series are read at the time of the selector's @.
    assert 'up{instance="a", job="1", region="eu", version="v1"}' in vector(
        instant(s, "info(up @ 60)", 120)
    )
    with pytest.raises(ParseError, match="expected label selectors only"):
        instant(s, 'info(up, target_info{version="v1"})', 60)
