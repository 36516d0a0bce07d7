"""Functions: counters, regressions, *_over_time, histograms, labels, dates, math."""

from __future__ import annotations

import math

import pytest

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.engine import Engine
from soulwatch.promql.values import Sample
from soulwatch.tsdb.memory import MemoryStorage
from tests.promql.engine_helpers import every, instant, load, series, vector


@pytest.fixture
def counter() -> MemoryStorage:
    s = MemoryStorage()
    # +10 every 15 s, reset to 0 after 60 s.
    load(s, series("req_total", job="api"), every(15, [0, 10, 20, 30, 40, 0, 10, 20, 30]))
    return s


def test_increase_counts_resets_and_extrapolates(counter: MemoryStorage) -> None:
    # Window (0, 120]: samples at 15..120 = 10,20,30,40,0,10,20,30 -> raw increase 60
    # sampled over 105 s. The first sample is one interval from the window start,
    # close enough to extrapolate all 15 s (the zero point, 17.5 s back, is further).
    got = vector(instant(counter, "increase(req_total[2m])", 120))['{job="api"}']
    assert got == pytest.approx(60 * (105 + 15) / 105)
    # Window (50, 170]: 40,0,10,20,30 at 60..120 -> 30 over 60 s; 10 s to the start,
    # but the series ends 50 s before the window does: only half an interval there.
    late = vector(instant(counter, "increase(req_total[2m])", 170))['{job="api"}']
    assert late == pytest.approx(30 * (60 + 10 + 7.5) / 60)
    rate = vector(instant(counter, "rate(req_total[2m])", 120))['{job="api"}']
    assert rate == pytest.approx(got / 120)


def test_irate_resets_changes_idelta(counter: MemoryStorage) -> None:
    assert vector(instant(counter, "irate(req_total[1m])", 120)) == {'{job="api"}': 10 / 15}
    assert vector(instant(counter, "resets(req_total[5m])", 120)) == {'{job="api"}': 1.0}
    assert vector(instant(counter, "changes(req_total[5m])", 120)) == {'{job="api"}': 8.0}
    assert vector(instant(counter, "idelta(req_total[1m])", 75)) == {'{job="api"}': -40.0}


def test_deriv_and_predict_linear() -> None:
    s = MemoryStorage()
    load(s, series("disk"), every(60, [100, 110, 120, 130]))
    assert vector(instant(s, "deriv(disk[5m])", 180)) == {"{}": pytest.approx(10 / 60)}
    # One hour after the last sample at 130: 130 + 3600 * 10/60.
    assert vector(instant(s, "predict_linear(disk[5m], 3600)", 180)) == {"{}": pytest.approx(730.0)}


def test_over_time_family() -> None:
    s = MemoryStorage()
    load(s, series("g", k="v"), every(10, [4, 8, 1, 7]))  # 0..30 s
    at = 30

    def one(fn: str) -> float:
        return vector(instant(s, f"{fn}(g[1m])", at))['{k="v"}']

    assert one("avg_over_time") == 5.0
    assert one("min_over_time") == 1.0
    assert one("max_over_time") == 8.0
    assert one("sum_over_time") == 20.0
    assert one("count_over_time") == 4.0
    assert one("stdvar_over_time") == pytest.approx(7.5)
    assert one("present_over_time") == 1.0
    assert vector(instant(s, "last_over_time(g[1m])", at)) == {'g{k="v"}': 7.0}
    assert vector(instant(s, "quantile_over_time(0.5, g[1m])", at)) == {'{k="v"}': 5.5}
    assert vector(instant(s, "absent_over_time(g[1m])", at)) == {}
    assert vector(instant(s, 'absent_over_time(g{k="w"}[1m])', at)) == {'{k="w"}': 1.0}


def test_absent_takes_labels_from_equality_matchers() -> None:
    s = MemoryStorage()
    assert vector(instant(s, 'absent(up{job="api", env=~"p.*"})', 0)) == {'{job="api"}': 1.0}
    load(s, series("up", job="api", env="prod"), [(0, 1)])
    assert vector(instant(s, 'absent(up{job="api"})', 0)) == {}


def _buckets(storage: MemoryStorage, counts: dict[str, float]) -> None:
    for le, count in counts.items():
        load(storage, series("lat_bucket", job="api", le=le), [(0, count)])


def test_histogram_quantile_interpolates_within_the_bucket() -> None:
    s = MemoryStorage()
    _buckets(s, {"0.5": 50, "1": 80, "2": 100, "+Inf": 100})
    assert vector(instant(s, "histogram_quantile(0.9, lat_bucket)", 0)) == {
        '{job="api"}': pytest.approx(1.5)
    }
    # Above every finite bucket: the highest finite bound.
    s2 = MemoryStorage()
    _buckets(s2, {"1": 10, "+Inf": 20})
    assert vector(instant(s2, "histogram_quantile(0.99, lat_bucket)", 0)) == {'{job="api"}': 1.0}


def test_histogram_quantile_fixes_non_monotonic_buckets_with_an_info() -> None:
    s = MemoryStorage()
    _buckets(s, {"1": 60, "2": 50, "+Inf": 100})
    result = instant(s, "histogram_quantile(0.5, lat_bucket)", 0)
    assert vector(result) == {'{job="api"}': pytest.approx(1.0 * 50 / 60)}
    assert len(result.infos) == 1
    assert "needed to be fixed for monotonicity" in result.infos[0]
    assert 'for metric name "lat_bucket"' in result.infos[0]


def test_histogram_quantile_needs_an_inf_bucket() -> None:
    s = MemoryStorage()
    _buckets(s, {"1": 10, "2": 20})
    assert math.isnan(vector(instant(s, "histogram_quantile(0.5, lat_bucket)", 0))['{job="api"}'])


def test_histogram_fraction_over_classic_buckets() -> None:
    s = MemoryStorage()
    _buckets(s, {"1": 50, "2": 80, "+Inf": 100})
    assert vector(instant(s, "histogram_fraction(0, 1, lat_bucket)", 0)) == {
        '{job="api"}': pytest.approx(0.5)
    }
    assert vector(instant(s, "histogram_fraction(1, 1.5, lat_bucket)", 0)) == {
        '{job="api"}': pytest.approx(0.15)
    }


def test_label_replace_and_label_join() -> None:
    s = MemoryStorage()
    load(s, series("up", instance="web-1:9090", job="api"), [(0, 1)])
    got = vector(instant(s, 'label_replace(up, "host", "$1", "instance", "(.*):.*")', 0))
    assert got == {'up{host="web-1", instance="web-1:9090", job="api"}': 1.0}
    # No match: the series passes through unchanged.
    got = vector(instant(s, 'label_replace(up, "host", "$1", "instance", "nomatch")', 0))
    assert got == {'up{instance="web-1:9090", job="api"}': 1.0}
    got = vector(instant(s, 'label_join(up, "id", "/", "job", "instance")', 0))
    assert got == {'up{id="api/web-1:9090", instance="web-1:9090", job="api"}': 1.0}
    with pytest.raises(EvaluationError, match="invalid regular expression"):
        instant(s, 'label_replace(up, "a", "b", "job", "(")', 0)


def test_sort_by_label_uses_natural_order() -> None:
    s = MemoryStorage()
    for cpu in ("10", "2", "1"):
        load(s, series("cpu", cpu=cpu), [(0, 1)])
    result = instant(s, 'sort_by_label(cpu, "cpu")', 0)
    assert isinstance(result.value, list)
    assert [x.labels.get("cpu") for x in result.value if isinstance(x, Sample)] == [
        "1",
        "2",
        "10",
    ]


def test_sort_and_sort_desc_put_nan_last() -> None:
    s = MemoryStorage()
    for k, v in (("a", 3.0), ("b", math.nan), ("c", 1.0)):
        load(s, series("m", k=k), [(0, v)])
    for query, order in (("sort(m)", ["c", "a", "b"]), ("sort_desc(m)", ["a", "c", "b"])):
        result = instant(s, query, 0)
        assert isinstance(result.value, list)
        assert [x.labels.get("k") for x in result.value if isinstance(x, Sample)] == order


def test_sort_in_a_range_query_warns() -> None:
    s = MemoryStorage()
    load(s, series("m"), [(0, 1)])
    result = Engine(s).range("sort(m)", 0, 0, 1000)
    assert result.warnings == [
        "PromQL warning: sort is ineffective for range queries since results are "
        "always ordered by labels (1:1)"
    ]


def test_date_functions_use_utc() -> None:
    s = MemoryStorage()
    # 2024-02-29 13:45:00 UTC, a Thursday.
    load(s, series("t"), [(0, 1709214300)])
    expected = {
        "year": 2024,
        "month": 2,
        "day_of_month": 29,
        "day_of_week": 4,
        "day_of_year": 60,
        "days_in_month": 29,
        "hour": 13,
        "minute": 45,
    }
    for fn, want in expected.items():
        assert vector(instant(s, f"{fn}(t)", 0)) == {"{}": float(want)}, fn
    assert vector(instant(s, "year()", 0)) == {"{}": 1970.0}


def test_math_functions_and_clamp() -> None:
    s = MemoryStorage()
    load(s, series("v", k="neg"), [(0, -2.5)])
    load(s, series("v", k="zero"), [(0, 0.0)])

    def at(query: str) -> dict[str, float]:
        return vector(instant(s, query, 0))

    assert at("abs(v)") == {'{k="neg"}': 2.5, '{k="zero"}': 0.0}
    assert at("round(v)") == {'{k="neg"}': -2.0, '{k="zero"}': 0.0}
    assert at("round(v, 2)") == {'{k="neg"}': -2.0, '{k="zero"}': 0.0}
    assert at('ln(v{k="zero"})') == {'{k="zero"}': -math.inf}
    assert math.isnan(at('sqrt(v{k="neg"})')['{k="neg"}'])
    assert at("clamp(v, -1, 1)") == {'{k="neg"}': -1.0, '{k="zero"}': 0.0}
    assert at("clamp(v, 1, -1)") == {}
    assert at("sgn(v)") == {'{k="neg"}': -1.0, '{k="zero"}': 0.0}
    assert math.isnan(float(Engine(s).instant("scalar(v)", 0).value.value))  # type: ignore[union-attr]


def test_timestamp_returns_sample_time_of_a_selector() -> None:
    s = MemoryStorage()
    load(s, series("up"), [(10, 1)])
    assert vector(instant(s, "timestamp(up)", 100)) == {"{}": 10.0}
    assert vector(instant(s, "timestamp(up * 1)", 100)) == {"{}": 100.0}
