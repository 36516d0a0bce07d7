"""The promqltest script runner: script parsing, comparison rules, unsupported detection."""

from __future__ import annotations

import math

import pytest

from soulwatch.exceptions import ConfigError
from soulwatch.promql.promqltest import almost_equal, parse_script, unsupported_reason
from soulwatch.tsdb.model import Labels


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1.0, 1.0, True),
        (math.nan, math.nan, True),
        (math.inf, math.inf, True),
        (math.inf, -math.inf, False),
        (1.0, 1.0 + 1e-9, True),
        (1.0, 1.00001, False),
        (0.0, 1e-300, False),
        (1e20, 1e20 * (1 + 1e-8), True),
        (math.nan, 1.0, False),
    ],
)
def test_almost_equal_uses_prometheus_relative_tolerance(a: float, b: float, equal: bool) -> None:
    assert almost_equal(a, b) is equal


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sum(rate(x[5m]))", None),
        ("info(up)", "info()"),
        ("mad_over_time(x[5m])", "experimental function"),
        ("x[step()]", "duration expressions"),
        ("x[5m + 1m]", "duration expressions"),
        ("vector(range())", "duration expressions"),
        ("end() - start()", "duration expressions"),
        ("x @ start()", None),
        ("min_of(1, 2)", "duration expressions"),
        ("a + fill(0) b", "fill modifiers"),
        ('x{a="[1+2]"}', None),
    ],
)
def test_unsupported_features_are_detected_by_name(query: str, reason: str | None) -> None:
    assert unsupported_reason(query) == reason


def test_queries_touching_native_histogram_series_are_unsupported() -> None:
    histograms = [Labels.of(__name__="req_hist", job="a")]
    assert unsupported_reason('rate(req_hist{job="a"}[5m])', histograms) == "native histograms"
    assert unsupported_reason('{__name__=~"req.*"}', histograms) == "native histograms"
    assert unsupported_reason('req_hist{job="b"}', histograms) is None


def test_malformed_script_names_file_and_line() -> None:
    script = "load 5m\n  up 1 2 3\n\nfrobnicate instant at 0 up\n"
    with pytest.raises(ConfigError) as caught:
        parse_script(script, "bad.test")
    assert (caught.value.file, caught.value.line) == ("bad.test", 4)
    assert "invalid command" in str(caught.value)


def test_bad_expect_line_is_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid expect statement"):
        parse_script("eval instant at 0 1\n  expect sometimes\n  1\n", "x.test")


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid number") as caught:
        parse_script('load 1m\n  up{job="a"} 1 2 three\n', "x.test")
    assert caught.value.line == 2
