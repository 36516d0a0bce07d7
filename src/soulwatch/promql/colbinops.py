"""Binary operators over whole step-columns, with numpy.

The same operators as :mod:`.binops` (which holds the rules and is the
reference, ``Engine(columnar=False)``), computed one series (or one matched
pair) at a time over every step at once: no Python float per step, and the
result stays a column for the next operator or aggregation.

The answers are the step code's, bit for bit: ``+ - * /`` and ``%`` are the
same IEEE operations (numpy's division by zero and ``fmod`` give what
``binops`` computes by hand); ``^`` and ``atan2`` are not, since numpy's
vectorised ``power`` and ``arctan2`` can differ from the C library in the
last bit, so they call the step code's own functions value by value. Errors
(duplicate series on the "one" side, ambiguous one-to-one matches, results
with the same label set at a step) are raised for the same inputs with the
same message. Only imported where numpy is installed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.ast import Cardinality, VectorMatching
from soulwatch.promql.ndtypes import Bools, Floats
from soulwatch.promql.stepcols import column_of
from soulwatch.promql.stepvec import DUPLICATE_LABELSET, StepSeries, drop_labels

if TYPE_CHECKING:
    from soulwatch.promql.binops import Signature


_NUMPY_ARITH: dict[str, Callable[[Floats, Floats], Floats]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
}

_NUMPY_COMPARE: dict[str, Callable[[Floats, Floats], Bools]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}


def arith(op: str, x: Floats, y: Floats, by_value: Callable[[float, float], float]) -> Floats:
    """``x op y`` at every step; ``by_value`` is the step code's function for ``op``."""
    f = _NUMPY_ARITH.get(op)
    if f is not None:
        with np.errstate(all="ignore"):
            return f(x, y)
    # ^ and atan2: the step code's own function, so the last bit agrees.
    return np.fromiter(map(by_value, x.tolist(), y.tolist()), dtype=np.float64, count=len(x))


def compare(op: str, x: Floats, y: Floats) -> Bools:
    """``x op y`` at every step, as Python compares floats (NaN equals nothing)."""
    return _NUMPY_COMPARE[op](x, y)


def vector_scalar(
    op: str,
    vec: list[StepSeries],
    scalar: list[float],
    *,
    swap: bool,
    return_bool: bool,
    by_value: Callable[[float, float], float] | None,
) -> list[StepSeries]:
    """``vec op scalar`` (``scalar op vec`` when ``swap``) for every series and step."""
    k = np.asarray(scalar, dtype=np.float64)
    out: list[StepSeries] = []
    if by_value is not None:
        for s in vec:
            values, valid = column_of(s)
            res = arith(op, k, values, by_value) if swap else arith(op, values, k, by_value)
            out.append(_series(s.labels, res, valid, True, s))
        return out
    for s in vec:
        values, valid = column_of(s)
        keep = compare(op, k, values) if swap else compare(op, values, k)
        if return_bool:
            if valid.any():
                out.append(_series(s.labels, keep.astype(np.float64), valid, True, s))
            continue
        # The vector's value survives a filter, even with the scalar on the left.
        kept = valid & keep
        if kept.any():
            out.append(StepSeries.of_column(s.labels, values, kept, s.drop_name))
    return out


def _series(
    labels: Any, values: Floats, valid: Bools, drop_name: bool, like: StepSeries
) -> StepSeries:
    """A result with ``like``'s mask: its "valid everywhere" flag needs no new scan."""
    if like.column is not None:
        return StepSeries(labels, None, drop_name, (values, valid, like.column[2]))
    return StepSeries.of_column(labels, values, valid, drop_name)


def presence(group: list[StepSeries]) -> Bools:
    """Steps where at least one series of ``group`` has a value."""
    if len(group) == 1:
        return column_of(group[0])[1]
    present: Bools = np.logical_or.reduce([column_of(s)[1] for s in group])
    return present


def first_overlap(group: list[StepSeries]) -> list[StepSeries] | None:
    """The series with a value at the first step where two or more of ``group`` have one."""
    masks = np.stack([column_of(s)[1] for s in group])
    crowded = np.flatnonzero(masks.sum(axis=0) > 1)
    if len(crowded) == 0:
        return None
    step = int(crowded[0])
    return [s for s, mask in zip(group, masks[:, step].tolist(), strict=True) if mask]


def vector_vector(
    op: str,
    one_groups: dict[Signature, list[StepSeries]],
    many_groups: dict[Signature, list[StepSeries]],
    *,
    matching: VectorMatching,
    return_bool: bool,
    metadata: frozenset[str],
    by_value: Callable[[float, float], float] | None,
    result_labels: Callable[..., Any],
) -> list[StepSeries]:
    """The matched pairs of a vector-vector operation, as ``binops`` pairs them.

    ``one_groups`` (already checked for duplicates) and ``many_groups`` are
    the two sides by matching signature; ``by_value`` is the arithmetic
    function (``None`` for a comparison).
    """
    card = matching.cardinality
    swapped = card is Cardinality.ONE_TO_MANY
    out: dict[Any, list[Any]] = {}
    for key, group in many_groups.items():
        ones = one_groups[key]
        if card is Cardinality.ONE_TO_ONE and len(group) > 1:
            many_count = np.sum([column_of(s)[1] for s in group], axis=0)
            if ((many_count > 1) & presence(ones)).any():
                raise EvaluationError(
                    "multiple matches for labels: many-to-one matching must be explicit "
                    "(group_left/group_right)"
                )
        for m in group:
            m_values, m_valid = column_of(m)
            for o in ones:
                o_values, o_valid = column_of(o)
                both = m_valid & o_valid
                if not both.any():
                    continue
                labels = result_labels(m.labels, o.labels, matching, card)
                lv, rv = (o_values, m_values) if swapped else (m_values, o_values)
                if by_value is not None:
                    # The name goes at once, as in the step code.
                    labels = drop_labels(labels, metadata)
                    res, mask = arith(op, lv, rv, by_value), both
                else:
                    keep = compare(op, lv, rv)
                    if return_bool:
                        res, mask = keep.astype(np.float64), both
                    else:
                        res, mask = lv, both & keep
                        if not mask.any():
                            continue
                _insert(out, labels, (res, mask, return_bool or m.drop_name), card)
    return [StepSeries.of_column(labels, v, ok, drop) for labels, (v, ok, drop) in out.items()]


def _insert(
    out: dict[Any, list[Any]], labels: Any, new: tuple[Floats, Bools, bool], card: Cardinality
) -> None:
    """Add a pair's result; results with the same labels merge unless they overlap."""
    values, valid, _ = new
    prev = out.get(labels)
    if prev is None:
        out[labels] = list(new)
        return
    if (prev[1] & valid).any():
        if card is Cardinality.ONE_TO_ONE:
            raise EvaluationError(DUPLICATE_LABELSET)
        raise EvaluationError(
            "multiple matches for labels: grouping labels must ensure unique matches"
        )
    prev[0] = np.where(valid, values, prev[0])
    prev[1] = prev[1] | valid


def masked(s: StepSeries, keep: Bools) -> StepSeries | None:
    """``s`` at the steps of ``keep`` only; ``None`` when that leaves no value."""
    values, valid = column_of(s)
    kept = valid & keep
    if not kept.any():
        return None
    return StepSeries.of_column(s.labels, values, kept, s.drop_name)


def merge_same_labels(series: list[StepSeries]) -> list[StepSeries]:
    """:func:`.stepvec.merge_same_labels` over columns: overlap at a step is an error."""
    seen: dict[Any, int] = {}
    out: list[StepSeries] = []
    merged: dict[int, list[Any]] = {}
    for s in series:
        index = seen.get(s.labels)
        if index is None:
            seen[s.labels] = len(out)
            out.append(s)
            continue
        acc = merged.get(index)
        if acc is None:
            acc = merged[index] = list(column_of(out[index]))
        values, valid = column_of(s)
        if (acc[1] & valid).any():
            raise EvaluationError(DUPLICATE_LABELSET)
        acc[0] = np.where(valid, values, acc[0])
        acc[1] = acc[1] | valid
    for index, (values, valid) in merged.items():
        first = out[index]
        out[index] = StepSeries.of_column(first.labels, values, valid, first.drop_name)
    return out
