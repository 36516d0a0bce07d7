"""PromQL expressions written back as text, the way Prometheus writes them.

:func:`to_string` is Prometheus's ``String()`` of a node (canonical spacing,
``sum by (job) (...)``, sorted matchers, ``@`` before ``offset``);
:func:`pretty` is its ``Pretty()``: a node longer than 100 characters is split
over indented lines. ``/api/v1/format_query`` answers with :func:`pretty`.
"""

from __future__ import annotations

import math
from decimal import Decimal

from soulwatch.duration import format_duration
from soulwatch.promql.ast import (
    AggregateExpr,
    At,
    AtKind,
    BinaryExpr,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from soulwatch.tsdb.model import Matcher

#: Prometheus splits a node over lines once its one-line form is longer than this.
MAX_LINE = 100

_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\n": "\\n",
    "\t": "\\t",
    "\r": "\\r",
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\v": "\\v",
}
_AGGREGATORS_WITH_PARAM = frozenset({"topk", "bottomk", "quantile", "count_values", "limitk"})


def go_quote(text: str) -> str:
    """``text`` double-quoted with Go's escapes (``%q``)."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'g', -1, 64)`` (and ``fmt.Sprint``): shortest digits,
    with an exponent from 1e6 up and below 1e-4 (``1e+06``, ``1.5e-05``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    # the decimal exponent of the first digit
    exp = len(digit_tuple) + exponent - 1
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp < 0:
        return f"{minus}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return minus + digits + "0" * (exp + 1 - len(digits))
    return f"{minus}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def _matcher(m: Matcher) -> str:
    return f"{m.name}{m.type.value}{go_quote(m.value)}"


def _at(at: At | None) -> str:
    if at is None:
        return ""
    if at.kind is AtKind.START:
        return " @ start()"
    if at.kind is AtKind.END:
        return " @ end()"
    return f" @ {at.timestamp_ms / 1000:.3f}"


def _offset(offset_ms: int) -> str:
    if offset_ms > 0:
        return f" offset {format_duration(offset_ms / 1000)}"
    if offset_ms < 0:
        return f" offset -{format_duration(-offset_ms / 1000)}"
    return ""


def _selector(node: VectorSelector, source: str, *, modifiers: bool = True) -> str:
    name = node.name or ""
    if source[node.pos : node.pos + 1] == "{":
        # written as {__name__="x"}: Prometheus keeps it that way
        name = ""
    shown = sorted(
        _matcher(m)
        for m in node.matchers
        if not (m.name == "__name__" and m.type.value == "=" and m.value == name)
    )
    suffix = _at(node.at) + _offset(node.offset_ms) if modifiers else ""
    if not shown:
        return f"{name}{suffix}"
    return f"{name}{{{','.join(shown)}}}{suffix}"


def _matching(node: BinaryExpr) -> str:
    vm = node.matching
    if vm is None or not (vm.labels or vm.on):
        return ""
    text = f" {'on' if vm.on else 'ignoring'} ({', '.join(vm.labels)})"
    if vm.cardinality in (Cardinality.MANY_TO_ONE, Cardinality.ONE_TO_MANY):
        side = "left" if vm.cardinality is Cardinality.MANY_TO_ONE else "right"
        text += f" group_{side} ({', '.join(vm.include)})"
    return text


def _aggregate_op(node: AggregateExpr) -> str:
    if node.without:
        return f"{node.op} without ({', '.join(node.grouping)}) "
    if node.grouping:
        return f"{node.op} by ({', '.join(node.grouping)}) "
    return node.op


def _subquery_suffix(node: SubqueryExpr) -> str:
    step = format_duration(node.step_ms / 1000) if node.step_ms else ""
    return (
        f"[{format_duration(node.range_ms / 1000)}:{step}]{_at(node.at)}{_offset(node.offset_ms)}"
    )


def to_string(node: Expr, source: str = "") -> str:
    """Prometheus's one-line form of ``node`` (``source``: the query it was parsed from)."""
    if isinstance(node, NumberLiteral):
        return go_float(node.value)
    if isinstance(node, StringLiteral):
        return go_quote(node.value)
    if isinstance(node, VectorSelector):
        return _selector(node, source)
    if isinstance(node, MatrixSelector):
        sel = node.selector
        return (
            f"{_selector(sel, source, modifiers=False)}[{format_duration(node.range_ms / 1000)}]"
            f"{_at(sel.at)}{_offset(sel.offset_ms)}"
        )
    if isinstance(node, SubqueryExpr):
        return to_string(node.expr, source) + _subquery_suffix(node)
    if isinstance(node, ParenExpr):
        return f"({to_string(node.expr, source)})"
    if isinstance(node, UnaryExpr):
        folded = _folded(node)
        if folded is not None:
            return to_string(folded, source)
        return f"{node.op}{to_string(node.expr, source)}"
    if isinstance(node, BinaryExpr):
        bool_ = " bool" if node.return_bool else ""
        lhs, rhs = to_string(node.lhs, source), to_string(node.rhs, source)
        return f"{lhs} {node.op}{bool_}{_matching(node)} {rhs}"
    if isinstance(node, AggregateExpr):
        param = f"{to_string(node.param, source)}, " if node.param is not None else ""
        return f"{_aggregate_op(node)}({param}{to_string(node.expr, source)})"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(to_string(a, source) for a in node.args)})"
    raise TypeError(f"cannot print {type(node).__name__}")


def _folded(node: UnaryExpr) -> NumberLiteral | None:
    # Prometheus's parser folds a sign into a number literal (-1 is a literal, not an op).
    if isinstance(node.expr, NumberLiteral):
        value = -node.expr.value if node.op == "-" else node.expr.value
        return NumberLiteral(value)
    return None


def pretty(node: Expr, level: int = 0, source: str = "") -> str:
    """Prometheus's ``Pretty()``: ``node`` over several indented lines when it is long."""
    indent = "  " * level
    one_line = to_string(node, source)
    if len(one_line) <= MAX_LINE:
        # A subquery that fits is written without indent, as Prometheus does.
        return one_line if isinstance(node, SubqueryExpr) else indent + one_line
    if isinstance(node, AggregateExpr):
        text = f"{indent}{_aggregate_op(node)}(\n"
        if node.param is not None and node.op in _AGGREGATORS_WITH_PARAM:
            text += f"{pretty(node.param, level + 1, source)},\n"
        return text + f"{pretty(node.expr, level + 1, source)}\n{indent})"
    if isinstance(node, BinaryExpr):
        bool_ = " bool" if node.return_bool else ""
        return (
            f"{pretty(node.lhs, level + 1, source)}\n{indent}{node.op}{bool_}{_matching(node)}\n"
            f"{pretty(node.rhs, level + 1, source)}"
        )
    if isinstance(node, Call):
        args = ",\n".join(pretty(a, level + 1, source) for a in node.args)
        return f"{indent}{node.func}(\n{args}\n{indent})"
    if isinstance(node, ParenExpr):
        return f"{indent}(\n{pretty(node.expr, level + 1, source)}\n{indent})"
    if isinstance(node, SubqueryExpr):
        return pretty(node.expr, level, source) + _subquery_suffix(node)
    if isinstance(node, UnaryExpr):
        folded = _folded(node)
        if folded is not None:
            return indent + to_string(folded, source)
        return f"{indent}{node.op}{pretty(node.expr, level, source).strip()}"
    return indent + one_line
