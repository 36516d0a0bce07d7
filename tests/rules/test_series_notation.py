"""The expanding series notation of promtool test files."""

from __future__ import annotations

import math

import pytest

from soulwatch.rules.series_notation import NotationError, parse_metric, parse_values
from soulwatch.rules.unittest import format_e, go_duration
from soulwatch.tsdb.model import Labels, is_stale_nan


def test_expanding_notation() -> None:
    assert parse_values("1+2x3 _ 5x2 _x2 -1 10-3x2") == [
        1, 3, 5, 7, None, 5, 5, 5, None, None, -1, 10, 7, 4,
    ]  # fmt: skip
    stale = parse_values("1 stale")
    assert stale[0] == 1
    assert is_stale_nan(stale[1])  # type: ignore[arg-type]
    assert parse_values("Inf -Inf")[:2] == [math.inf, -math.inf]
    assert math.isnan(parse_values("NaN")[0])  # type: ignore[arg-type]
    # Repeated addition, as Prometheus computes it (so float rounding agrees).
    assert parse_values("0+0.1x3")[-1] == 0.1 + 0.1 + 0.1


def test_bad_notation() -> None:
    with pytest.raises(NotationError):
        parse_values("1 two 3")


def test_metric_syntax() -> None:
    assert parse_metric('up{job="api", instance="a:1"}') == Labels.of(
        __name__="up", job="api", instance="a:1"
    )
    assert parse_metric("{}") == Labels()
    assert parse_metric('{a="x\\"y"}') == Labels.of(a='x"y')
    with pytest.raises(NotationError):
        parse_metric("up{job=api}")


@pytest.mark.parametrize(
    ("value", "text"), [(2.0, "2E+00"), (0.15, "1.5E-01"), (120.0, "1.2E+02"), (0.0, "0E+00")]
)
def test_go_e_format(value: float, text: str) -> None:
    assert format_e(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (120, "2m0s"), (3600, "1h0m0s"), (90.5, "1m30.5s")]
)
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text
