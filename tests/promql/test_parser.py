"""The PromQL parser: the trees it builds and the errors it reports."""

from __future__ import annotations

import math

import pytest

from soulwatch.promql.ast import (
    AggregateExpr,
    At,
    AtKind,
    BinaryExpr,
    Call,
    Cardinality,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorSelector,
    value_type,
)
from soulwatch.promql.parser import parse, parse_duration
from soulwatch.tsdb.model import Labels, Matcher, MatchType


def _value(query: str) -> float:
    expr = parse(query)
    assert isinstance(expr, NumberLiteral), expr
    return expr.value


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("1", 1.0),
        ("0x1F", 31.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("2.", 2.0),
        ("-0.2e-6", -0.2e-6),
        ("+Inf", math.inf),
        ("inF", math.inf),
        ("-inf", -math.inf),
        ("1h30m", 5400.0),
        ("10s53ms", 10.053),
        ("- -1", 1.0),
    ],
)
def test_number_literals(query: str, expected: float) -> None:
    assert _value(query) == expected


def test_nan_literal() -> None:
    assert math.isnan(_value("NaN"))
    assert math.isnan(_value("nan"))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('"a\\tb\\u00e9\\x41\\101\\\\"', "a\tbéAA\\"),
        ("'it\\'s'", "it's"),
        ("`raw\\n`", "raw\\n"),
        ('""', ""),
    ],
)
def test_string_literals_decode_go_escapes(query: str, expected: str) -> None:
    expr = parse(query)
    assert expr == StringLiteral(expected, 0)


def test_selector_with_every_matcher_type() -> None:
    expr = parse('http_requests{a="1", b!="2", c=~"x|y", d!~"z.*",}')
    assert isinstance(expr, VectorSelector)
    assert expr.name == "http_requests"
    assert [(m.type, m.name, m.value) for m in expr.matchers] == [
        (MatchType.EQUAL, "__name__", "http_requests"),
        (MatchType.EQUAL, "a", "1"),
        (MatchType.NOT_EQUAL, "b", "2"),
        (MatchType.REGEX, "c", "x|y"),
        (MatchType.NOT_REGEX, "d", "z.*"),
    ]


def test_name_matcher_and_quoted_names() -> None:
    by_matcher = parse('{__name__="up", job="a"}')
    assert isinstance(by_matcher, VectorSelector)
    assert by_matcher.name == "up"
    quoted = parse('{"my.metric", "service.name"="api"}')
    assert isinstance(quoted, VectorSelector)
    assert quoted.name == "my.metric"
    assert Matcher.equal("service.name", "api") in quoted.matchers


def test_keywords_as_metric_and_label_names() -> None:
    expr = parse('min{by="x", offset="y"} + on(bool, and) group_left(or) sum')
    assert isinstance(expr, BinaryExpr)
    assert isinstance(expr.lhs, VectorSelector)
    assert expr.lhs.name == "min"
    assert expr.matching is not None
    assert expr.matching.labels == ("bool", "and")
    assert expr.matching.include == ("or",)
    assert isinstance(expr.rhs, VectorSelector)
    assert expr.rhs.name == "sum"


def test_go_regex_inline_flags_are_accepted() -> None:
    expr = parse('foo{group=~".*((?i)DUC).*"}')
    assert isinstance(expr, VectorSelector)
    assert expr.matchers[1].matches_labels(Labels.of({"group": "proDuction"}))
    assert not expr.matchers[1].matches_labels(Labels.of({"group": "canary"}))


def test_offset_at_and_range() -> None:
    expr = parse("foo[5m] @ 100 offset -1m")
    assert expr == MatrixSelector(
        VectorSelector(
            "foo",
            (Matcher.equal("__name__", "foo"),),
            offset_ms=-60_000,
            at=At(AtKind.TIMESTAMP, 100_000),
        ),
        300_000,
    )
    at_end = parse("foo @ end()")
    assert isinstance(at_end, VectorSelector)
    assert at_end.at == At(AtKind.END)


def test_subqueries() -> None:
    expr = parse("max_over_time(rate(foo[5m])[1h:1m] offset 2m)")
    assert isinstance(expr, Call)
    sub = expr.args[0]
    assert isinstance(sub, SubqueryExpr)
    assert (sub.range_ms, sub.step_ms, sub.offset_ms) == (3_600_000, 60_000, 120_000)
    default_step = parse("foo[10m:]")
    assert isinstance(default_step, SubqueryExpr)
    assert default_step.step_ms == 0


def test_duration_number_literals_in_ranges_and_arguments() -> None:
    expr = parse("predict_linear(foo[300], 1h)")
    assert isinstance(expr, Call)
    matrix, seconds = expr.args
    assert isinstance(matrix, MatrixSelector)
    assert matrix.range_ms == 300_000
    assert seconds == NumberLiteral(3600.0, 25)


def _shape(expr: object) -> object:
    """A compact rendering of operator nesting, for precedence tests."""
    if isinstance(expr, BinaryExpr):
        return (_shape(expr.lhs), expr.op, _shape(expr.rhs))
    if isinstance(expr, UnaryExpr):
        return (expr.op, _shape(expr.expr))
    if isinstance(expr, ParenExpr):
        return _shape(expr.expr)
    if isinstance(expr, VectorSelector):
        return expr.name
    if isinstance(expr, NumberLiteral):
        return expr.value
    return expr


@pytest.mark.parametrize(
    ("query", "shape"),
    [
        ("a + b * c", ("a", "+", ("b", "*", "c"))),
        ("a - b - c", (("a", "-", "b"), "-", "c")),
        ("a ^ b ^ c", ("a", "^", ("b", "^", "c"))),
        ("-a ^ b", ("-", ("a", "^", "b"))),
        ("-a * b", (("-", "a"), "*", "b")),
        ("a or b and c unless d", ("a", "or", (("b", "and", "c"), "unless", "d"))),
        ("a == b + c", ("a", "==", ("b", "+", "c"))),
        ("a atan2 b * c", (("a", "atan2", "b"), "*", "c")),
        ("a AND b", ("a", "and", "b")),
        ("2 * -1", (2.0, "*", -1.0)),
    ],
)
def test_operator_precedence(query: str, shape: object) -> None:
    assert _shape(parse(query)) == shape


def test_vector_matching_and_bool() -> None:
    expr = parse("a > bool ignoring(x) b")
    assert isinstance(expr, BinaryExpr)
    assert expr.return_bool
    assert expr.matching is not None
    assert (expr.matching.on, expr.matching.labels) == (False, ("x",))
    grouped = parse("a / on(job) group_right(instance) b")
    assert isinstance(grouped, BinaryExpr)
    assert grouped.matching is not None
    assert grouped.matching.cardinality is Cardinality.ONE_TO_MANY
    set_op = parse("a unless b")
    assert isinstance(set_op, BinaryExpr)
    assert set_op.matching is not None
    assert set_op.matching.cardinality is Cardinality.MANY_TO_MANY
    scalar_side = parse("a * 2")
    assert isinstance(scalar_side, BinaryExpr)
    assert scalar_side.matching is None


@pytest.mark.parametrize(
    "query",
    [
        "sum by (job) (rate(x[5m]))",
        "sum(rate(x[5m])) by (job)",
        "SUM(rate(x[5m])) BY (job)",
        "sum by (job,) (rate(x[5m]))",
    ],
)
def test_aggregation_modifier_before_or_after(query: str) -> None:
    expr = parse(query)
    assert isinstance(expr, AggregateExpr)
    assert (expr.op, expr.grouping, expr.without) == ("sum", ("job",), False)


def test_parameterised_aggregations() -> None:
    topk = parse("topk without (instance) (3, x)")
    assert isinstance(topk, AggregateExpr)
    assert topk.param == NumberLiteral(3.0, 25)
    assert topk.without
    counted = parse('count_values("value", x)')
    assert isinstance(counted, AggregateExpr)
    assert counted.param == StringLiteral("value", 13)
    for query in ("quantile(0.9, x)", "limitk(2, x)", "limit_ratio(0.5, x)"):
        assert isinstance(parse(query), AggregateExpr)


def test_function_calls_and_result_types() -> None:
    assert value_type(parse("time()")) is ValueType.SCALAR
    assert value_type(parse("scalar(x)")) is ValueType.SCALAR
    assert value_type(parse("rate(x[5m])")) is ValueType.VECTOR
    assert value_type(parse("x[5m]")) is ValueType.MATRIX
    assert value_type(parse('"s"')) is ValueType.STRING
    assert value_type(parse("1 + 2")) is ValueType.SCALAR
    assert value_type(parse("x + 2")) is ValueType.VECTOR
    for query in (
        "round(x)",
        "round(x, 0.1)",
        "day_of_week()",
        'label_join(x, "d", ",", "a", "b", "c")',
        'sort_by_label(x, "a", "b")',
        "histogram_quantile(0.9, rate(x_bucket[5m]))",
    ):
        assert isinstance(parse(query), Call)


def test_comments_and_newlines() -> None:
    expr = parse("sum(\n  rate(x[5m])  # per second\n)")
    assert isinstance(expr, AggregateExpr)


@pytest.mark.parametrize(
    ("text", "ms"),
    [("5m", 300_000), ("1h30m", 5_400_000), ("10s53ms", 10_053), ("1y", 31_536_000_000)],
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration(text) == ms


@pytest.mark.parametrize("text", ["", "5", "30m1h", "1h1h", "5x"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="not a valid duration"):
        parse_duration(text)
