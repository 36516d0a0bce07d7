"""Binary operators: arithmetic, comparison and set operators with vector matching.

Matching signatures and result label sets are computed once per series (or
per matched pair), not once per step; the per-step work is only the value
arithmetic and the duplicate checks Prometheus makes at every step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from soulwatch.exceptions import EvaluationError, QueryError
from soulwatch.promql.ast import BinaryExpr, Cardinality, VectorMatching
from soulwatch.promql.stepvec import (
    NAME_ONLY,
    ScalarSteps,
    StepSeries,
    StepValue,
    drop_labels,
    keep_labels,
    merge_same_labels,
)
from soulwatch.tsdb.model import Labels

try:
    from soulwatch.promql import colbinops
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    colbinops = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator

ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})
COMPARISON = frozenset({"==", "!=", ">", "<", ">=", "<="})
SET_OPERATORS = frozenset({"and", "or", "unless"})

Signature = tuple[tuple[str, str], ...]


def _is_odd_integer(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def _pow(x: float, y: float) -> float:
    # Python raises where Go's math.Pow returns an infinity or NaN.
    try:
        return math.pow(x, y)
    except ZeroDivisionError:
        return math.copysign(math.inf, x) if _is_odd_integer(y) else math.inf
    except ValueError:
        if x == 0.0:
            return math.copysign(math.inf, x) if _is_odd_integer(y) else math.inf
        return math.nan
    except OverflowError:
        negative = x < 0 and _is_odd_integer(y)
        return -math.inf if negative else math.inf


def _div(x: float, y: float) -> float:
    if y == 0.0:
        if x == 0.0 or math.isnan(x):
            return math.nan
        return math.copysign(math.inf, x) * math.copysign(1.0, y)
    return x / y


def _mod(x: float, y: float) -> float:
    try:
        return math.fmod(x, y)
    except ValueError:
        return math.nan


ARITH_FUNCS: dict[str, Callable[[float, float], float]] = {
    "+": lambda x, y: x + y,
    "-": lambda x, y: x - y,
    "*": lambda x, y: x * y,
    "/": _div,
    "%": _mod,
    "^": _pow,
    "atan2": math.atan2,
}

COMPARE_FUNCS: dict[str, Callable[[float, float], bool]] = {
    "==": lambda x, y: x == y,
    "!=": lambda x, y: x != y,
    ">": lambda x, y: x > y,
    "<": lambda x, y: x < y,
    ">=": lambda x, y: x >= y,
    "<=": lambda x, y: x <= y,
}


def evaluate(ev: Evaluator, node: BinaryExpr, ts: list[int]) -> StepValue:
    """Evaluate ``lhs op rhs`` at every step."""
    lhs = ev.eval(node.lhs, ts)
    rhs = ev.eval(node.rhs, ts)
    op = node.op
    if isinstance(lhs, ScalarSteps) and isinstance(rhs, ScalarSteps):
        return _scalar_scalar(op, lhs, rhs, node.return_bool)
    # A range query's steps as whole columns (an instant query: one step, the
    # loops are cheaper than arrays).
    columns = ev.columnar and colbinops is not None and len(ts) > 1
    if op in SET_OPERATORS:
        if not isinstance(lhs, list) or not isinstance(rhs, list):
            raise QueryError(f'set operator "{op}" not allowed in binary scalar expression')
        return _set_op(
            op, lhs, rhs, node.matching or VectorMatching(), ev.metadata, columns=columns
        )
    if isinstance(lhs, list) and isinstance(rhs, ScalarSteps):
        return _vector_scalar(
            op, lhs, rhs, swap=False, return_bool=node.return_bool, columns=columns
        )
    if isinstance(lhs, ScalarSteps) and isinstance(rhs, list):
        return _vector_scalar(
            op, rhs, lhs, swap=True, return_bool=node.return_bool, columns=columns
        )
    if isinstance(lhs, list) and isinstance(rhs, list):
        ev.check_time()
        return _vector_vector(
            op,
            lhs,
            rhs,
            node.matching or VectorMatching(),
            node.return_bool,
            metadata=ev.metadata,
            columns=columns,
        )
    raise QueryError(f"binary expression must contain only scalar and instant vector types ({op})")


def _scalar_scalar(op: str, lhs: ScalarSteps, rhs: ScalarSteps, return_bool: bool) -> ScalarSteps:
    if op in ARITHMETIC:
        f = ARITH_FUNCS[op]
        return ScalarSteps([f(a, b) for a, b in zip(lhs.vals, rhs.vals, strict=True)])
    if op in COMPARISON:
        c = COMPARE_FUNCS[op]
        if not return_bool:
            raise QueryError("comparisons between scalars must use BOOL modifier")
        return ScalarSteps(
            [1.0 if c(a, b) else 0.0 for a, b in zip(lhs.vals, rhs.vals, strict=True)]
        )
    raise QueryError(f'set operator "{op}" not allowed in binary scalar expression')


def _vector_scalar(
    op: str,
    vec: list[StepSeries],
    scalar: ScalarSteps,
    *,
    swap: bool,
    return_bool: bool,
    columns: bool = False,
) -> list[StepSeries]:
    sv = scalar.vals
    if columns:
        by_value = ARITH_FUNCS[op] if op in ARITHMETIC else None
        return colbinops.vector_scalar(
            op, vec, sv, swap=swap, return_bool=return_bool, by_value=by_value
        )
    out: list[StepSeries] = []
    if op in ARITHMETIC:
        f = ARITH_FUNCS[op]
        for s in vec:
            if swap:
                vals = [None if v is None else f(k, v) for v, k in zip(s.vals, sv, strict=True)]
            else:
                vals = [None if v is None else f(v, k) for v, k in zip(s.vals, sv, strict=True)]
            out.append(StepSeries(s.labels, vals, True))
        return out
    c = COMPARE_FUNCS[op]
    for s in vec:
        res: list[float | None] = []
        any_value = False
        for v, k in zip(s.vals, sv, strict=True):
            if v is None:
                res.append(None)
                continue
            keep = c(k, v) if swap else c(v, k)
            if return_bool:
                res.append(1.0 if keep else 0.0)
            elif keep:
                # The vector's value survives a filter, even with the scalar on the left.
                res.append(v)
            else:
                res.append(None)
                continue
            any_value = True
        if any_value:
            out.append(StepSeries(s.labels, res, s.drop_name or return_bool))
    return out


def signature_function(
    matching: VectorMatching, metadata: frozenset[str] = NAME_ONLY
) -> Callable[[Labels], Signature]:
    """The label subset two series must share to match under ``on``/``ignoring``.

    ``metadata`` are the labels of the metric's identity (``__name__``, and
    with type-and-unit labels ``__type__``/``__unit__``), never matched on
    unless named in ``on``.
    """
    if matching.on:
        keep = frozenset(matching.labels)
        return lambda labels: tuple(p for p in labels if p[0] in keep)
    drop = frozenset(matching.labels) | metadata
    return lambda labels: tuple(p for p in labels if p[0] not in drop)


def _presence(group: list[StepSeries], n: int) -> list[bool]:
    if len(group) == 1:
        return [v is not None for v in group[0].vals]
    return [any(s.vals[i] is not None for s in group) for i in range(n)]


def _set_op(
    op: str,
    lhs: list[StepSeries],
    rhs: list[StepSeries],
    matching: VectorMatching,
    metadata: frozenset[str],
    *,
    columns: bool = False,
) -> list[StepSeries]:
    sig = signature_function(matching, metadata)
    if columns:
        return _set_op_columns(op, lhs, rhs, sig)
    n = len(lhs[0].vals) if lhs else (len(rhs[0].vals) if rhs else 0)
    if op == "or":
        lhs_groups: dict[Signature, list[StepSeries]] = {}
        for s in lhs:
            lhs_groups.setdefault(sig(s.labels), []).append(s)
        lhs_present = {k: _presence(g, n) for k, g in lhs_groups.items()}
        out = list(lhs)
        for s in rhs:
            present = lhs_present.get(sig(s.labels))
            if present is None:
                out.append(s)
                continue
            vals = [None if p else v for v, p in zip(s.vals, present, strict=True)]
            if any(v is not None for v in vals):
                out.append(StepSeries(s.labels, vals, s.drop_name))
        return merge_same_labels(out)
    rhs_groups: dict[Signature, list[StepSeries]] = {}
    for s in rhs:
        rhs_groups.setdefault(sig(s.labels), []).append(s)
    rhs_present = {k: _presence(g, n) for k, g in rhs_groups.items()}
    out = []
    keep_if_present = op == "and"
    for s in lhs:
        present = rhs_present.get(sig(s.labels))
        if present is None:
            if not keep_if_present:
                out.append(s)
            continue
        vals = [v if p == keep_if_present else None for v, p in zip(s.vals, present, strict=True)]
        if any(v is not None for v in vals):
            out.append(StepSeries(s.labels, vals, s.drop_name))
    return out


def _set_op_columns(
    op: str, lhs: list[StepSeries], rhs: list[StepSeries], sig: Callable[[Labels], Signature]
) -> list[StepSeries]:
    """:func:`_set_op` over whole step-columns: the same matching, masks for presence."""
    if op == "or":
        lhs_groups: dict[Signature, list[StepSeries]] = {}
        for s in lhs:
            lhs_groups.setdefault(sig(s.labels), []).append(s)
        lhs_present = {k: ~colbinops.presence(g) for k, g in lhs_groups.items()}
        out = list(lhs)
        for s in rhs:
            absent = lhs_present.get(sig(s.labels))
            kept = s if absent is None else colbinops.masked(s, absent)
            if kept is not None:
                out.append(kept)
        return colbinops.merge_same_labels(out)
    rhs_groups: dict[Signature, list[StepSeries]] = {}
    for s in rhs:
        rhs_groups.setdefault(sig(s.labels), []).append(s)
    rhs_present = {k: colbinops.presence(g) for k, g in rhs_groups.items()}
    result = []
    for s in lhs:
        present = rhs_present.get(sig(s.labels))
        if present is None:
            if op == "unless":
                result.append(s)
            continue
        kept = colbinops.masked(s, present if op == "and" else ~present)
        if kept is not None:
            result.append(kept)
    return result


def _format_labels(labels: Labels | Signature) -> str:
    inner = ", ".join(f'{n}="{_go_escape(v)}"' for n, v in labels)
    return "{" + inner + "}"


def _go_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _result_labels(
    many: Labels, one: Labels, matching: VectorMatching, card: Cardinality
) -> Labels:
    labels = many
    if card is Cardinality.ONE_TO_ONE:
        names = frozenset(matching.labels)
        labels = keep_labels(labels, names) if matching.on else drop_labels(labels, names)
    if matching.include:
        changes = {name: one.get(name) for name in matching.include}
        labels = labels.with_(changes)
    return labels


def _vector_vector(
    op: str,
    lhs: list[StepSeries],
    rhs: list[StepSeries],
    matching: VectorMatching,
    return_bool: bool,
    *,
    metadata: frozenset[str],
    columns: bool = False,
) -> list[StepSeries]:
    card = matching.cardinality
    if card is Cardinality.MANY_TO_MANY:
        raise QueryError("many-to-many only allowed for set operators")
    swapped = card is Cardinality.ONE_TO_MANY
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    if not many or not one:
        return []
    # The step count, without building a column's Python list to measure it.
    n = len(many[0].column[0]) if many[0].column is not None else len(many[0].vals)
    sig = signature_function(matching)
    one_groups: dict[Signature, list[StepSeries]] = {}
    for s in one:
        one_groups.setdefault(sig(s.labels), []).append(s)
    for key, group in one_groups.items():
        if len(group) > 1:
            side = "left" if swapped else "right"
            if columns:
                _raise_duplicates(key, colbinops.first_overlap(group), side)
            else:
                _check_unique_one_side(key, group, n, side)
    many_groups: dict[Signature, list[StepSeries]] = {}
    for s in many:
        key = sig(s.labels)
        if key in one_groups:
            many_groups.setdefault(key, []).append(s)
    if columns:
        return colbinops.vector_vector(
            op,
            one_groups,
            many_groups,
            matching=matching,
            return_bool=return_bool,
            metadata=metadata,
            by_value=ARITH_FUNCS.get(op),
            result_labels=_result_labels,
        )
    arith = op in ARITHMETIC
    f_arith = ARITH_FUNCS.get(op)
    f_cmp = COMPARE_FUNCS.get(op)
    out: dict[Labels, StepSeries] = {}
    for key, group in many_groups.items():
        ones = one_groups[key]
        if card is Cardinality.ONE_TO_ONE and len(group) > 1:
            one_present = _presence(ones, n)
            for i in range(n):
                if one_present[i] and sum(s.vals[i] is not None for s in group) > 1:
                    raise EvaluationError(
                        "multiple matches for labels: many-to-one matching must be explicit "
                        "(group_left/group_right)"
                    )
        for m in group:
            for o in ones:
                labels = _result_labels(m.labels, o.labels, matching, card)
                if arith:
                    # Prometheus drops the name of an arithmetic result at once (its
                    # uniqueness checks see the label set without it); ``bool``
                    # results drop it late, filters keep the left side's.
                    labels = drop_labels(labels, metadata)
                vals: list[float | None] = [None] * n
                produced = False
                for i, (mv, ov) in enumerate(zip(m.vals, o.vals, strict=True)):
                    if mv is None or ov is None:
                        continue
                    lv, rv = (ov, mv) if swapped else (mv, ov)
                    if f_arith is not None:
                        vals[i] = f_arith(lv, rv)
                    else:
                        assert f_cmp is not None
                        keep = f_cmp(lv, rv)
                        if return_bool:
                            vals[i] = 1.0 if keep else 0.0
                        elif keep:
                            vals[i] = lv
                        else:
                            continue
                    produced = True
                if not produced:
                    continue
                _insert(out, StepSeries(labels, vals, return_bool or m.drop_name), card)
    return list(out.values())


def _check_unique_one_side(key: Signature, group: list[StepSeries], n: int, side: str) -> None:
    for i in range(n):
        present = [s for s in group if s.vals[i] is not None]
        if len(present) > 1:
            _raise_duplicates(key, present, side)


def _raise_duplicates(key: Signature, present: list[StepSeries] | None, side: str) -> None:
    """Fail on two "one"-side series of a match group with a value at the same step."""
    if present is None:
        return
    pair = sorted(s.labels for s in present)[:2]
    raise EvaluationError(
        f"found duplicate series for the match group {_format_labels(key)} on the "
        f"{side} hand-side of the operation: "
        f"[{_format_labels(pair[0])}, {_format_labels(pair[1])}]"
        ";many-to-many matching not allowed: matching labels must be unique on one side"
    )


def _insert(out: dict[Labels, StepSeries], s: StepSeries, card: Cardinality) -> None:
    prev = out.get(s.labels)
    if prev is None:
        out[s.labels] = s
        return
    for i, v in enumerate(s.vals):
        if v is None:
            continue
        if prev.vals[i] is not None:
            if card is Cardinality.ONE_TO_ONE:
                raise EvaluationError("vector cannot contain metrics with the same labelset")
            raise EvaluationError(
                "multiple matches for labels: grouping labels must ensure unique matches"
            )
        prev.vals[i] = v
