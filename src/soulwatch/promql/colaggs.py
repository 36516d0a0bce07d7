"""The ranking and counting aggregations over whole step-columns, with numpy.

``quantile``, ``topk``/``bottomk``/``limitk``, ``limit_ratio`` and
``count_values`` of a range query: each group's members are stacked into
one ``members x steps`` matrix, and every step is answered at once instead
of one Python list per step (:mod:`.aggregations` keeps that per-step form
for instant queries and for the step-by-step path).

The answers are the per-step code's, bit for bit, and so is the order of
the series returned: members are ranked with stable sorts on the same keys
(NaN first for ``quantile``, last for ``topk``/``bottomk``, ties in member
order, ``-0.0`` and ``0.0`` alike), the interpolation of ``quantile`` is the
same IEEE arithmetic (:func:`.windowranks.quantile_rows`), and a series
appears where the per-step loop would first have added it. Only imported
where numpy is installed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from soulwatch.promql import stepcols, windowranks
from soulwatch.promql.ndtypes import Bools, Floats, Ints
from soulwatch.promql.stepvec import StepSeries, format_float
from soulwatch.tsdb.model import Labels

Groups = dict[Labels, list[StepSeries]]


#: Cells (members x steps) stacked at once: bounds the temporaries to a few MiB each.
BLOCK_CELLS = 1 << 20

_Columns = list[tuple[Floats, Bools]]


def _columns(members: Sequence[StepSeries]) -> _Columns:
    """Each member's (values, validity) arrays."""
    return [stepcols.column_of(s) for s in members]


def _blocks(columns: _Columns, n: int) -> Iterator[tuple[slice, Floats, Bools]]:
    """``(steps, values, present)``: runs of steps with the members stacked as matrices.

    A group of many members over many steps (a day at a minute: 1,440)
    is never stacked whole: each run holds about ``BLOCK_CELLS`` cells.
    """
    block = max(1, BLOCK_CELLS // max(1, len(columns)))
    for lo in range(0, n, block):
        steps = slice(lo, lo + block)
        values = np.stack([c[0][steps] for c in columns])
        present = np.stack([c[1][steps] for c in columns])
        yield steps, values, present


def quantile(groups: Groups, qs: Sequence[float]) -> list[StepSeries]:
    """``quantile(q, ...)`` of every group at every step; ``qs`` holds one φ per step."""
    q = np.asarray(qs, dtype=np.float64)
    # The interpolation is only read inside [0, 1]; elsewhere any φ in it will do.
    inside = np.where((q >= 0) & (q <= 1), q, 0.0)
    out = []
    with np.errstate(all="ignore"):
        for labels, members in groups.items():
            result = np.empty(len(q), dtype=np.float64)
            seen = np.zeros(len(q), dtype=np.bool_)
            for steps, values, present in _blocks(_columns(members), len(q)):
                count = present.sum(axis=0)
                seen[steps] = count > 0
                # One row per step: the members' values in member order, +Inf padding.
                rows = np.where(present, values, np.inf).T
                ranked = windowranks.quantile_rows(rows, count, inside[steps])
                result[steps] = windowranks.bounded_quantile(q[steps], ranked)
            if seen.any():
                out.append(StepSeries.of_column(labels, result, seen))
    return out


def select_k(op: str, ks: Sequence[int], groups: Groups) -> list[StepSeries]:
    """``topk``, ``bottomk`` or ``limitk`` with ``ks`` (one k per step) of every group.

    A member is kept at a step when fewer than ``k`` members come before it
    there: in member order for ``limitk``, by value for the others. Series
    come out in the order the per-step loop first keeps them: group by group,
    by the first step that keeps them, then by their rank at that step.
    """
    k = np.asarray(ks, dtype=np.int64)
    n = len(k)
    out: list[StepSeries] = []
    for members in groups.values():
        columns = _columns(members)
        kept = np.zeros((len(members), n), dtype=np.bool_)
        first_step = np.full(len(members), n, dtype=np.int64)
        first_rank = np.zeros(len(members), dtype=np.int64)
        for steps, values, present in _blocks(columns, n):
            rank = _ranks(op, values, present)
            here = kept[:, steps]
            np.logical_and(present, rank < k[None, steps], out=here)
            new = np.flatnonzero(here.any(axis=1) & (first_step == n))
            at = here[new].argmax(axis=1)
            first_step[new] = steps.start + at
            first_rank[new] = rank[new, at]
        rows = np.flatnonzero(first_step < n)
        for index in rows[np.lexsort((first_rank[rows], first_step[rows]))].tolist():
            s = members[index]
            values = columns[index][0]
            out.append(StepSeries.of_column(s.labels, values, kept[index], s.drop_name))
    return out


def _ranks(op: str, values: Floats, present: Bools) -> Ints:
    """Each member's position at each step among the members present there."""
    if op == "limitk":
        return np.cumsum(present, axis=0) - 1
    nan = np.isnan(values)
    # Missing members sort after everything; NaN after every number (topk and bottomk).
    kind = np.where(present, nan.astype(np.int8), np.int8(2))
    with np.errstate(all="ignore"):
        key = np.where(nan | ~present, 0.0, -values if op == "topk" else values)
    # lexsort is stable: equal keys (-0.0 and 0.0 too) stay in member order.
    order = np.lexsort((key, kind), axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(len(values))[:, None], axis=0)
    return rank


def _covers(r: Floats, offset: float) -> Bools:
    """Steps whose ratio keeps a series at ``offset``: the first ``r`` of [0, 1), or the last."""
    return ((r >= 0) & (offset < r)) | ((r < 0) & (offset >= 1 + r))


def limit_ratio(
    groups: Groups, ratios: Sequence[float], offsets: Sequence[float]
) -> list[StepSeries]:
    """``limit_ratio``: each member at the steps whose ratio keeps its ``offsets`` entry.

    ``offsets`` gives every member of every group, in order, its stable
    position in [0, 1); ``ratios`` is the clamped ratio per step.
    """
    r = np.asarray(ratios, dtype=np.float64)
    out = []
    members = [s for group in groups.values() for s in group]
    for s, offset in zip(members, offsets, strict=True):
        values, present = stepcols.column_of(s)
        # The same series is kept wherever the ratio reaches its position.
        keep = present & _covers(r, offset)
        if keep.any():
            out.append(StepSeries.of_column(s.labels, values, keep, s.drop_name))
    return out


#: One bit pattern for every NaN: all NaNs count under one label value, ``NaN``.
_NAN_BITS = np.float64(np.nan).view(np.uint64)


def count_values(label: str, groups: Groups, n: int) -> list[StepSeries]:
    """``count_values(label, ...)``: per group, how many members hold each value at each step.

    Values are told apart by their bits (``-0.0`` is not ``0.0``, as their
    text differs), NaNs all alike. A label value that two groups produce
    under the same labels is one series, the later group winning a step.
    """
    out: dict[Labels, tuple[Floats, Bools]] = {}
    for labels, members in groups.items():
        columns = _columns(members)
        values = np.stack([c[0] for c in columns])
        present = np.stack([c[1] for c in columns])
        bits = np.where(np.isnan(values), _NAN_BITS, values.view(np.uint64))
        # Step-major (transposed) order: the order the per-step loop meets values.
        cells = np.flatnonzero(present.T)
        if not cells.size:
            continue
        found = bits.T.ravel()[cells]
        uniques, first, inverse = np.unique(found, return_index=True, return_inverse=True)
        steps = cells // len(members)
        counts = np.zeros((len(uniques), n), dtype=np.float64)
        np.add.at(counts, (inverse.ravel(), steps), 1.0)
        for u in np.argsort(first, kind="stable").tolist():
            value = float(uniques[u : u + 1].view(np.float64)[0])
            key = labels.with_({label: format_float(value)})
            row, has = counts[u], counts[u] > 0
            earlier = out.get(key)
            if earlier is not None:
                row = np.where(has, row, earlier[0])
                has = has | earlier[1]
            out[key] = (row, has)
    return [StepSeries.of_column(key, row, has) for key, (row, has) in out.items()]
