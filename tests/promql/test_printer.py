"""PromQL written back as Prometheus writes it: each expected text is Prometheus 2.42's
``/api/v1/format_query`` answer for the query (tests/e2e/test_prometheus_api_compat.py
asks a running Prometheus for more, including the split of long expressions)."""

from __future__ import annotations

import pytest

from soulwatch.promql.parser import parse
from soulwatch.promql.printer import go_float, pretty

PROMETHEUS_ANSWERS = [
    ('sum(rate(x{a="b"}[5m]))by(job)', 'sum by (job) (rate(x{a="b"}[5m]))'),
    ("a+on(x)group_left(y)-b", "a + on (x) group_left (y) -b"),
    ("x @ 100 offset -5m", "x @ 100.000 offset -5m"),
    ("topk(3,y)without(z)", "topk without (z) (3, y)"),
    ("(a)[5m:1m] offset 1h", "(a)[5m:1m] offset 1h"),
    ("a > bool 1e6", "a > bool 1e+06"),
    ('x{b=~"c.*",a!="d"}', 'x{a!="d",b=~"c.*"}'),
    ("-1 + +2", "-1 + 2"),
    ("rate(http_requests_total[5m] @ end())", "rate(http_requests_total[5m] @ end())"),
    ("x offset 90d", "x offset 90d"),
    ("x offset 2w", "x offset 2w"),
    ("sum without () (x)", "sum without () (x)"),
    ('count_values("v", x)', 'count_values("v", x)'),
    ("quantile(0.9, x)", "quantile(0.9, x)"),
    ("a unless ignoring(b) c", "a unless ignoring (b) c"),
    ("1e21 + 0.00001", "1e+21 + 1e-05"),
    ('x{a="\\n\\"q"}', 'x{a="\\n\\"q"}'),
    ('{__name__="x",a="b"}', '{__name__="x",a="b"}'),
    ('{a="b"}', '{a="b"}'),
    ("rate(x[1h30m])", "rate(x[1h30m])"),
    ("x[5m] @ 100.5", "x[5m] @ 100.500"),
    ("foo / on() group_right() bar", "foo / on () group_right () bar"),
    ("max_over_time((x)[1h:])", "max_over_time((x)[1h:])"),
]


@pytest.mark.parametrize(("query", "expected"), PROMETHEUS_ANSWERS)
def test_format_query_matches_prometheus(query: str, expected: str) -> None:
    assert pretty(parse(query), source=query) == expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(1e6, "1e+06"), (123456.0, "123456"), (0.0001, "0.0001"), (1.5e-5, "1.5e-05"), (-2.0, "-2")],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text
