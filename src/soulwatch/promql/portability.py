"""Which parts of a query an older Prometheus would refuse.

soulwatch reads PromQL as Prometheus 3 does. A rule file meant to run on a
Prometheus 2.x as well must avoid what 2.x does not know: quoted (UTF-8)
metric and label names, numbers and durations used for one another (which
includes ``@ 100s``), functions added since or still experimental there.
:func:`prometheus2_incompatibilities` finds each one with its position;
``soulwatch check rules --target prometheus-2`` prints them as warnings.
The versions named come from Prometheus's changelog.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from soulwatch.exceptions import ParseError
from soulwatch.promql.ast import (
    AggregateExpr,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
)
from soulwatch.promql.lexer import Token, TokenKind, iter_tokens, line_column
from soulwatch.promql.parser import parse

__all__ = ["TARGETS", "Incompatibility", "prometheus2_incompatibilities"]

#: The ``--target`` values ``soulwatch check rules`` knows.
TARGETS = ("prometheus-2",)

# The functions of Prometheus 2.55 that need no feature flag.
_PROMETHEUS2_FUNCTIONS = frozenset(
    (
        *("abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan"),
        *("atanh", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min"),
        *("cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year"),
        *("days_in_month", "deg", "delta", "deriv", "exp", "floor", "histogram_avg"),
        *("histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev"),
        *("histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase"),
        *("irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2"),
        *("max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear"),
        *("present_over_time", "quantile_over_time", "rad", "rate", "resets", "round"),
        *("scalar", "sgn", "sin", "sinh", "sort", "sort_desc", "sqrt", "stddev_over_time"),
        *("stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector"),
        "year",
    )
)
_EXPERIMENTAL = "needs --enable-feature=promql-experimental-functions"
# Functions and aggregations Prometheus 2.x has only behind a flag, or not at all.
_NOTES = {
    "double_exponential_smoothing": (
        "is Prometheus 3's name for holt_winters; Prometheus 2.x knows it as holt_winters"
    ),
    "mad_over_time": f"is experimental in Prometheus 2.49+ ({_EXPERIMENTAL})",
    "sort_by_label": f"is experimental in Prometheus 2.49+ ({_EXPERIMENTAL})",
    "sort_by_label_desc": f"is experimental in Prometheus 2.49+ ({_EXPERIMENTAL})",
    "limitk": f"is experimental in Prometheus 2.54+ ({_EXPERIMENTAL})",
    "limit_ratio": f"is experimental in Prometheus 2.54+ ({_EXPERIMENTAL})",
    "info": f"is experimental in Prometheus 2.55+ ({_EXPERIMENTAL})",
}
_QUOTED_NAMES = (
    "quoted metric and label names need Prometheus 3 (2.55 only with --enable-feature=utf8-names)"
)
_INTERCHANGEABLE = "need Prometheus 3 (experimental in 2.54)"
_MATCH_OPS = frozenset(("=", "!=", "=~", "!~"))
_GROUPING = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right"))


@dataclass(frozen=True)
class Incompatibility:
    """One construct an older Prometheus refuses, at 1-based ``line``:``column`` of the query."""

    message: str
    line: int
    column: int


def prometheus2_incompatibilities(query: str) -> list[Incompatibility]:
    """What in ``query`` Prometheus 2.x would not load (empty if it parses nowhere)."""
    try:
        expr = parse(query)
        tokens = [t for t in iter_tokens(query) if t.kind is not TokenKind.EOF]
    except ParseError:
        return []  # a syntax error is reported as such, not as a portability problem
    found: list[tuple[int, str]] = []
    found += _token_problems(tokens)
    found += _name_problems(expr)
    out = []
    for pos, message in sorted(set(found)):
        line, column = line_column(query, pos)
        out.append(Incompatibility(message, line, column))
    return out


def _name_problems(expr: Expr) -> Iterator[tuple[int, str]]:
    for node in _walk(expr):
        if isinstance(node, Call) and node.func not in _PROMETHEUS2_FUNCTIONS:
            note = _NOTES.get(node.func, "is not in Prometheus 2.x (added in Prometheus 3)")
            yield node.pos, f"function {node.func}() {note}"
        elif isinstance(node, AggregateExpr) and node.op in _NOTES:
            yield node.pos, f"aggregation {node.op} {_NOTES[node.op]}"


def _token_problems(tokens: list[Token]) -> Iterator[tuple[int, str]]:
    braces = 0
    grouping = False
    for i, token in enumerate(tokens):
        prev = tokens[i - 1] if i > 0 else None
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.kind is TokenKind.PUNCT:
            if token.text == "{":
                braces += 1
            elif token.text == "}":
                braces = max(braces - 1, 0)
            elif token.text == ")":
                grouping = False
            elif token.text == "(" and prev is not None and _word(prev) in _GROUPING:
                grouping = True
        elif token.kind is TokenKind.STRING and (braces or grouping):
            if _is_quoted_name(token, prev, following, grouping=grouping):
                yield token.pos, _QUOTED_NAMES
        elif token.kind is TokenKind.DURATION and not _in_duration_place(tokens, i):
            what = "a duration after @" if _word(prev) == "@" else "a duration used as a number"
            yield token.pos, f"{what}: numbers and durations {_INTERCHANGEABLE}"
        elif token.kind is TokenKind.NUMBER and _in_duration_place(tokens, i):
            yield (
                token.pos,
                f"a number used as a duration: numbers and durations {_INTERCHANGEABLE}",
            )


def _is_quoted_name(
    token: Token, prev: Token | None, following: Token | None, *, grouping: bool
) -> bool:
    if grouping:
        return True
    if following is not None and following.kind is TokenKind.OPERATOR:
        return following.text in _MATCH_OPS  # {"label.name"="value"}
    # {"metric.name"} or {"metric.name", job="x"}
    return _word(prev) in ("{", ",") and _word(following) in (",", "}")


def _in_duration_place(tokens: list[Token], i: int) -> bool:
    """Whether token ``i`` stands where Prometheus 2.x wants a duration."""
    j = i - 1
    if j >= 0 and tokens[j].kind is TokenKind.OPERATOR and tokens[j].text in "+-":
        j -= 1  # offset -5m
    if j < 0:
        return False
    prev = _word(tokens[j])
    return prev in ("[", ":", "offset")


def _word(token: Token | None) -> str:
    if token is None:
        return ""
    return token.text.lower() if token.kind is TokenKind.IDENT else token.text


def _walk(expr: Expr) -> Iterator[Expr]:
    yield expr
    children: tuple[Expr, ...] = ()
    if isinstance(expr, MatrixSelector):
        children = (expr.selector,)
    elif isinstance(expr, SubqueryExpr | ParenExpr | UnaryExpr):
        children = (expr.expr,)
    elif isinstance(expr, BinaryExpr):
        children = (expr.lhs, expr.rhs)
    elif isinstance(expr, AggregateExpr):
        children = (expr.expr,) if expr.param is None else (expr.param, expr.expr)
    elif isinstance(expr, Call):
        children = expr.args
    for child in children:
        yield from _walk(child)
