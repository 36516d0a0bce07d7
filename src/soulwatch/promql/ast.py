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


@dataclass(frozen=True)
class FunctionSignature:
    """A function's argument and return types, as in Prometheus's function table.

    ``variadic`` 0 means exactly ``arg_types``; ``n > 0`` means the last argument
    type may appear between 0 and ``n`` times; ``-1`` means any number of times
    (at least ``len(arg_types) - 1`` arguments either way). ``experimental``
    marks functions that Prometheus only enables behind a feature flag.
    """

    name: str
    arg_types: tuple[ValueType, ...]
    return_type: ValueType = ValueType.VECTOR
    variadic: int = 0
    experimental: bool = False


def _sig(
    name: str,
    args: str,
    ret: str = "v",
    variadic: int = 0,
    experimental: bool = False,
) -> FunctionSignature:
    # Compact spelling of the table below: one letter per argument type.
    letters = {
        "v": ValueType.VECTOR,
        "m": ValueType.MATRIX,
        "s": ValueType.SCALAR,
        "S": ValueType.STRING,
    }
    return FunctionSignature(
        name, tuple(letters[c] for c in args), letters[ret], variadic, experimental
    )


_MATH = [
    "abs",
    "ceil",
    "exp",
    "floor",
    "ln",
    "log2",
    "log10",
    "sgn",
    "sqrt",
    "deg",
    "rad",
    "acos",
    "acosh",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "cos",
    "cosh",
    "sin",
    "sinh",
    "tan",
    "tanh",
    "histogram_avg",
    "histogram_count",
    "histogram_sum",
    "histogram_stddev",
    "histogram_stdvar",
]
_OVER_TIME = [
    "absent_over_time",
    "avg_over_time",
    "changes",
    "count_over_time",
    "delta",
    "deriv",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "max_over_time",
    "min_over_time",
    "present_over_time",
    "rate",
    "resets",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
]
_EXPERIMENTAL_OVER_TIME = [
    "first_over_time",
    "mad_over_time",
    "ts_of_first_over_time",
    "ts_of_last_over_time",
    "ts_of_max_over_time",
    "ts_of_min_over_time",
]
_CALENDAR = [
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
]

#: Prometheus 3's function table (name → signature).
FUNCTIONS: dict[str, FunctionSignature] = {
    **{n: _sig(n, "v") for n in _MATH},
    **{n: _sig(n, "m") for n in _OVER_TIME},
    **{n: _sig(n, "m", experimental=True) for n in _EXPERIMENTAL_OVER_TIME},
    **{n: _sig(n, "v", variadic=1) for n in _CALENDAR},
    "absent": _sig("absent", "v"),
    "clamp": _sig("clamp", "vss"),
    "clamp_max": _sig("clamp_max", "vs"),
    "clamp_min": _sig("clamp_min", "vs"),
    "double_exponential_smoothing": _sig("double_exponential_smoothing", "mss", experimental=True),
    "histogram_fraction": _sig("histogram_fraction", "ssv"),
    "histogram_quantile": _sig("histogram_quantile", "sv"),
    "histogram_quantiles": _sig("histogram_quantiles", "vSss", variadic=9, experimental=True),
    "info": _sig("info", "vv", variadic=1, experimental=True),
    "label_join": _sig("label_join", "vSSS", variadic=-1),
    "label_replace": _sig("label_replace", "vSSSS"),
    "pi": _sig("pi", "", "s"),
    "predict_linear": _sig("predict_linear", "ms"),
    "quantile_over_time": _sig("quantile_over_time", "sm"),
    "round": _sig("round", "vs", variadic=1),
    "scalar": _sig("scalar", "v", "s"),
    "sort": _sig("sort", "v"),
    "sort_by_label": _sig("sort_by_label", "vS", variadic=-1, experimental=True),
    "sort_by_label_desc": _sig("sort_by_label_desc", "vS", variadic=-1, experimental=True),
    "sort_desc": _sig("sort_desc", "v"),
    "time": _sig("time", "", "s"),
    "timestamp": _sig("timestamp", "v"),
    "vector": _sig("vector", "s"),
}

#: Aggregation operators; those in ``AGGREGATION_PARAMS`` take a leading parameter.
AGGREGATIONS = frozenset(
    [
        "avg",
        "bottomk",
        "count",
        "count_values",
        "group",
        "limit_ratio",
        "limitk",
        "max",
        "min",
        "quantile",
        "stddev",
        "stdvar",
        "sum",
        "topk",
    ]
)

#: The parameter type of each parameterised aggregation.
AGGREGATION_PARAMS: dict[str, ValueType] = {
    "topk": ValueType.SCALAR,
    "bottomk": ValueType.SCALAR,
    "quantile": ValueType.SCALAR,
    "limitk": ValueType.SCALAR,
    "limit_ratio": ValueType.SCALAR,
    "count_values": ValueType.STRING,
}

#: Binary operators that compare; they filter unless ``bool`` is given.
COMPARISON_OPS = frozenset(("==", "!=", ">", "<", ">=", "<="))

#: Set operators (many-to-many matching, vectors only).
SET_OPS = frozenset(("and", "or", "unless"))


def value_type(expr: Expr) -> ValueType:
    """The PromQL type an expression evaluates to (the parser has type-checked it)."""
    if isinstance(expr, NumberLiteral):
        return ValueType.SCALAR
    if isinstance(expr, StringLiteral):
        return ValueType.STRING
    if isinstance(expr, VectorSelector | AggregateExpr):
        return ValueType.VECTOR
    if isinstance(expr, MatrixSelector | SubqueryExpr):
        return ValueType.MATRIX
    if isinstance(expr, ParenExpr | UnaryExpr):
        return value_type(expr.expr)
    if isinstance(expr, BinaryExpr):
        scalar = ValueType.SCALAR
        both_scalar = value_type(expr.lhs) is scalar and value_type(expr.rhs) is scalar
        return scalar if both_scalar else ValueType.VECTOR
    if isinstance(expr, Call):
        return FUNCTIONS[expr.func].return_type
    raise TypeError(f"not a PromQL expression: {expr!r}")
