"""The PromQL syntax tree that the parser builds and the engine evaluates.

Durations and timestamps are integer milliseconds. Nodes are frozen
dataclasses; ``pos`` is the 0-based offset of the node in the query text, for
error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from soulwatch.tsdb.model import Matcher


class ValueType(Enum):
    """The four PromQL value types."""

    SCALAR = "scalar"
    VECTOR = "vector"
    MATRIX = "matrix"
    STRING = "string"


class AtKind(Enum):
    """What an ``@`` modifier pins the evaluation time to."""

    TIMESTAMP = "timestamp"
    START = "start"
    END = "end"


@dataclass(frozen=True)
class At:
    """An ``@`` modifier: a fixed timestamp (ms), or the query's ``start()``/``end()``."""

    kind: AtKind
    timestamp_ms: int = 0


@dataclass(frozen=True)
class Expr:
    """Base of every node."""


@dataclass(frozen=True)
class NumberLiteral(Expr):
    """A float literal such as ``1``, ``0x1f``, ``1e3``, ``Inf``, ``NaN``, ``1h`` (3600)."""

    value: float
    pos: int = 0


@dataclass(frozen=True)
class StringLiteral(Expr):
    """A string literal."""

    value: str
    pos: int = 0


@dataclass(frozen=True)
class VectorSelector(Expr):
    """``name{matchers} offset d @ t``; ``matchers`` includes the ``__name__`` matcher."""

    name: str | None
    matchers: tuple[Matcher, ...]
    offset_ms: int = 0
    at: At | None = None
    pos: int = 0


@dataclass(frozen=True)
class MatrixSelector(Expr):
    """A range selector ``vs[range]``; offset and ``@`` live on the inner selector."""

    selector: VectorSelector
    range_ms: int
    pos: int = 0


@dataclass(frozen=True)
class SubqueryExpr(Expr):
    """``expr[range:step] offset d @ t``; ``step_ms`` 0 means the default interval."""

    expr: Expr
    range_ms: int
    step_ms: int = 0
    offset_ms: int = 0
    at: At | None = None
    pos: int = 0


@dataclass(frozen=True)
class ParenExpr(Expr):
    """``( expr )``."""

    expr: Expr
    pos: int = 0


@dataclass(frozen=True)
class UnaryExpr(Expr):
    """``-expr`` or ``+expr``."""

    op: str
    expr: Expr
    pos: int = 0


class Cardinality(Enum):
    """Vector matching cardinality."""

    ONE_TO_ONE = "one-to-one"
    MANY_TO_ONE = "many-to-one"
    ONE_TO_MANY = "one-to-many"
    MANY_TO_MANY = "many-to-many"


@dataclass(frozen=True)
class VectorMatching:
    """``on(...)``/``ignoring(...)`` and ``group_left(...)``/``group_right(...)``."""

    cardinality: Cardinality = Cardinality.ONE_TO_ONE
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class BinaryExpr(Expr):
    """``lhs op rhs``; ``op`` is the operator's text (``+``, ``==``, ``and``, ``atan2``...)."""

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None
    pos: int = 0


@dataclass(frozen=True)
class AggregateExpr(Expr):
    """``op by|without (grouping) (param, expr)``."""

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False
    pos: int = 0


@dataclass(frozen=True)
class Call(Expr):
    """A function call ``func(args...)``."""

    func: str
    args: tuple[Expr, ...] = field(default_factory=tuple)
    pos: int = 0
