"""Binary operators: arithmetic edge cases, filters, vector matching, set operators."""

from __future__ import annotations

import math

import pytest

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.memory import MemoryStorage
from tests.promql.engine_helpers import instant, load, series, vector


@pytest.fixture
def storage() -> MemoryStorage:
    s = MemoryStorage()
    load(s, series("used", host="a", team="x"), [(0, 30)])
    load(s, series("used", host="b", team="y"), [(0, 90)])
    load(s, series("quota", host="a"), [(0, 100)])
    load(s, series("quota", host="b"), [(0, 100)])
    load(s, series("owner", team="x", person="ann"), [(0, 1)])
    load(s, series("owner", team="y", person="bob"), [(0, 1)])
    return s


def test_scalar_arithmetic_follows_ieee_like_go() -> None:
    engine = Engine(MemoryStorage())

    def value(q: str) -> float:
        result = engine.instant(q, 0).value
        assert not isinstance(result, list)
        return float(result.value)

    assert value("1 / 0") == math.inf
    assert value("-1 / 0") == -math.inf
    assert math.isnan(value("0 / 0"))
    assert math.isnan(value("5 % 0"))
    assert value("-7 % 3") == -1.0  # sign of the dividend, like Go's math.Mod
    assert value("2 ^ 10") == 1024.0
    assert value("10 ^ 400") == math.inf
    assert math.isnan(value("(-8) ^ 0.5"))
    assert value("0 ^ -1") == math.inf
    assert value("2 > bool 1") == 1.0


def test_one_to_one_matching_drops_the_metric_name(storage: MemoryStorage) -> None:
    got = vector(instant(storage, "used / ignoring(team) quota", 0))
    assert got == {'{host="a"}': 0.3, '{host="b"}': 0.9}


def test_on_keeps_only_the_matching_labels(storage: MemoryStorage) -> None:
    assert vector(instant(storage, "used / on(host) quota", 0)) == {
        '{host="a"}': 0.3,
        '{host="b"}': 0.9,
    }


def test_comparison_filters_and_keeps_the_name(storage: MemoryStorage) -> None:
    assert vector(instant(storage, "used > 50", 0)) == {'used{host="b", team="y"}': 90.0}
    assert vector(instant(storage, "50 < used", 0)) == {'used{host="b", team="y"}': 90.0}
    assert vector(instant(storage, "used > bool 50", 0)) == {
        '{host="a", team="x"}': 0.0,
        '{host="b", team="y"}': 1.0,
    }


def test_group_left_copies_labels_from_the_one_side(storage: MemoryStorage) -> None:
    got = vector(instant(storage, "used * on(team) group_left(person) owner", 0))
    assert got == {
        '{host="a", person="ann", team="x"}': 30.0,
        '{host="b", person="bob", team="y"}': 90.0,
    }


def test_group_right_mirrors_group_left(storage: MemoryStorage) -> None:
    got = vector(instant(storage, "owner * on(team) group_right(person) used", 0))
    assert got == {
        '{host="a", person="ann", team="x"}': 30.0,
        '{host="b", person="bob", team="y"}': 90.0,
    }


def test_set_operators(storage: MemoryStorage) -> None:
    assert set(vector(instant(storage, "used and on(host) (quota > 0)", 0))) == {
        'used{host="a", team="x"}',
        'used{host="b", team="y"}',
    }
    assert vector(instant(storage, "used unless on(team) owner{person='ann'}", 0)) == {
        'used{host="b", team="y"}': 90.0
    }
    assert set(vector(instant(storage, "used or quota", 0))) == {
        'used{host="a", team="x"}',
        'used{host="b", team="y"}',
        'quota{host="a"}',
        'quota{host="b"}',
    }


def test_many_to_one_without_group_modifier_is_an_error(storage: MemoryStorage) -> None:
    load(storage, series("used", host="c", team="x"), [(0, 5)])
    with pytest.raises(EvaluationError, match="many-to-one matching must be explicit"):
        instant(storage, "used * on(team) owner", 0)


def test_duplicate_series_on_the_one_side_is_reported_with_both(storage: MemoryStorage) -> None:
    with pytest.raises(EvaluationError) as info:
        instant(storage, "owner * on() group_left used", 0)
    assert str(info.value) == (
        "found duplicate series for the match group {} on the right hand-side of the "
        'operation: [{__name__="used", host="a", team="x"}, '
        '{__name__="used", host="b", team="y"}];many-to-many matching not allowed: '
        "matching labels must be unique on one side"
    )


def test_range_query_matches_per_step() -> None:
    s = MemoryStorage()
    load(s, series("a", k="1"), [(0, 1), (60, 2)])
    load(s, series("b", k="1"), [(60, 10)])
    result = Engine(s).range("a + b", 0, 60_000, 60_000)
    assert isinstance(result.value, list)
    assert [(str(x.labels), list(x)) for x in result.value] == [('{k="1"}', [(60_000, 12.0)])]


def test_a_filter_keeps_a_pending_name_removal() -> None:
    s = MemoryStorage()
    load(s, series("a_total", job="x"), [(0, 0), (60, 60)])
    assert vector(instant(s, "rate(a_total[5m]) > 0", 60)) == {'{job="x"}': pytest.approx(0.2)}
    assert vector(instant(s, "a_total > 0", 60)) == {'a_total{job="x"}': 60.0}
