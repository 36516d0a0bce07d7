"""Type checks of a parsed PromQL tree, in Prometheus's order and wording.

Prometheus type-checks only a tree that parsed without syntax errors, in one
walk from the root: a function call's argument count before its arguments,
an aggregation's expression before its parameter, a binary expression's
operands before the operator's own rules. :func:`check` follows the same
order so that, of several problems, the one reported is the one Prometheus
reports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from soulwatch.promql.ast import (
    AGGREGATION_PARAMS,
    COMPARISON_OPS,
    FUNCTIONS,
    SET_OPS,
    AggregateExpr,
    BinaryExpr,
    Call,
    Cardinality,
    Expr,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorSelector,
    value_type,
)

_DOC_TYPES = {
    ValueType.SCALAR: "scalar",
    ValueType.STRING: "string",
    ValueType.VECTOR: "instant vector",
    ValueType.MATRIX: "range vector",
}

#: Reports one type error: (message, 0-based offset).
ErrorSink = Callable[[str, int], None]


@dataclass
class ParseFacts:
    """What the parser saw that the tree does not keep.

    ``operator_pos`` maps ``id(BinaryExpr)`` to the offset of its operator,
    where Prometheus points operator errors; ``named_selectors`` holds the
    offsets of selectors whose metric name was written before the braces.
    """

    operator_pos: dict[int, int] = field(default_factory=dict)
    named_selectors: set[int] = field(default_factory=set)


def doc_type(vtype: ValueType) -> str:
    """The type as Prometheus's messages name it (``instant vector``...)."""
    return _DOC_TYPES[vtype]


def check(expr: Expr, facts: ParseFacts, report: ErrorSink) -> None:
    """Walk ``expr`` and call ``report`` for each type error, in Prometheus's order."""
    _Checker(facts, report).check(expr)


class _Checker:
    def __init__(self, facts: ParseFacts, report: ErrorSink) -> None:
        self.facts = facts
        self.report = report

    def check(self, expr: Expr) -> ValueType:
        if isinstance(expr, ParenExpr):
            self.check(expr.expr)
        elif isinstance(expr, UnaryExpr):
            inner = self.check(expr.expr)
            if inner not in (ValueType.SCALAR, ValueType.VECTOR):
                self.report(
                    "unary expression only allowed on expressions of type scalar or "
                    f'instant vector, got "{doc_type(inner)}"',
                    expr.pos,
                )
        elif isinstance(expr, BinaryExpr):
            self.binary(expr)
        elif isinstance(expr, Call):
            self.call(expr)
        elif isinstance(expr, AggregateExpr):
            self.expect(expr.expr, ValueType.VECTOR, "aggregation expression")
            if expr.param is not None:
                self.expect(expr.param, AGGREGATION_PARAMS[expr.op], "aggregation parameter")
        elif isinstance(expr, SubqueryExpr):
            inner = self.check(expr.expr)
            if inner is not ValueType.VECTOR:
                self.report(
                    f"subquery is only allowed on instant vector, got {inner.value}", expr.pos
                )
        elif isinstance(expr, MatrixSelector):
            self.check(expr.selector)
        elif isinstance(expr, VectorSelector):
            self.selector(expr)
        return value_type(expr)

    def expect(self, expr: Expr, wanted: ValueType, context: str) -> None:
        got = self.check(expr)
        if got is not wanted:
            self.report(
                f"expected type {doc_type(wanted)} in {context}, got {doc_type(got)}",
                _start(expr),
            )

    def call(self, expr: Call) -> None:
        signature = FUNCTIONS[expr.func]
        declared, given = len(signature.arg_types), len(expr.args)
        name = expr.func
        if signature.variadic == 0:
            if given != declared:
                self.report(
                    f'expected {declared} argument(s) in call to "{name}", got {given}', expr.pos
                )
        else:
            least = declared - 1
            most = least + signature.variadic
            if given < least:
                self.report(
                    f'expected at least {least} argument(s) in call to "{name}", got {given}',
                    expr.pos,
                )
            elif signature.variadic > 0 and given > most:
                self.report(
                    f'expected at most {most} argument(s) in call to "{name}", got {given}',
                    expr.pos,
                )
        label_selector: VectorSelector | None = None
        if name == "info" and given > 1:
            label_selector = self.info_labels(expr)
        for index, arg in enumerate(expr.args):
            wanted = signature.arg_types[min(index, declared - 1)] if declared else None
            if arg is label_selector:
                continue  # checked by info_labels: it may match the empty string
            if wanted is None:
                self.check(arg)
            else:
                self.expect(arg, wanted, f'call to function "{name}"')

    def info_labels(self, expr: Call) -> VectorSelector | None:
        """``info()``'s second argument: label matchers only, which may all match ``""``."""
        arg = expr.args[1]
        kind = value_type(arg)
        if kind is not ValueType.VECTOR:
            self.report(
                f'expected type {doc_type(ValueType.VECTOR)} in call to function "info", '
                f"got {doc_type(kind)}",
                expr.pos,
            )
        if not isinstance(arg, VectorSelector):
            self.report("expected label selectors only", _start(arg))
            return None
        if arg.pos in self.facts.named_selectors:
            self.report("expected label selectors only, got vector selector instead", arg.pos)
            return None
        return arg

    def binary(self, expr: BinaryExpr) -> None:
        lt, rt = self.check(expr.lhs), self.check(expr.rhs)
        op_pos = self.facts.operator_pos.get(id(expr), expr.pos)
        op = expr.op
        matching = expr.matching
        if expr.return_bool and op not in COMPARISON_OPS:
            self.report("bool modifier can only be used on comparison operators", op_pos)
        scalar, vector = ValueType.SCALAR, ValueType.VECTOR
        if op in COMPARISON_OPS and not expr.return_bool and lt is scalar and rt is scalar:
            self.report("comparisons between scalars must use BOOL modifier", op_pos)
        if matching is not None and matching.on:
            for name in matching.include:
                if name in matching.labels:
                    self.report(
                        f'label "{name}" must not occur in ON and GROUP clause at once', op_pos
                    )
        for side, operand in ((lt, expr.lhs), (rt, expr.rhs)):
            if side not in (scalar, vector):
                self.report(
                    "binary expression must contain only scalar and instant vector types",
                    _start(operand),
                )
        if (lt is not vector or rt is not vector) and matching is not None:
            if matching.labels:
                self.report("vector matching only allowed between instant vectors", op_pos)
        elif op in SET_OPS and matching is not None:
            grouped = (Cardinality.ONE_TO_MANY, Cardinality.MANY_TO_ONE)
            if matching.cardinality in grouped:
                self.report(f'no grouping allowed for "{op}" operation', op_pos)
        if op in SET_OPS and (lt is scalar or rt is scalar):
            self.report(f'set operator "{op}" not allowed in binary scalar expression', expr.pos)

    def selector(self, expr: VectorSelector) -> None:
        if expr.pos in self.facts.named_selectors:
            # The name before the braces is the first matcher; any other on
            # __name__ sets it twice.
            for matcher in expr.matchers[1:]:
                if matcher.name == "__name__":
                    self.report(
                        f'metric name must not be set twice: "{expr.name}" or "{matcher.value}"',
                        expr.pos,
                    )
            return
        if all(m.matches("") for m in expr.matchers):
            self.report("vector selector must contain at least one non-empty matcher", expr.pos)


def _start(expr: Expr) -> int:
    return int(getattr(expr, "pos", 0))
