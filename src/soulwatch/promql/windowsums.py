"""Compensated sums over every window at once: ``*_over_time``, ``deriv``, ``predict_linear``.

Prometheus 3 sums a window's floats with Kahan-Neumaier compensation
(``sum_over_time``, ``avg_over_time``, ``stddev/stdvar_over_time`` and the
least-squares fit of ``deriv``/``predict_linear``), so the result depends on
the order of the additions and cannot come from a cumulative sum. Here the
window's samples are walked by position instead: step ``k`` adds the ``k``-th
sample of every window of every series with whole-array operations, so each
cell sees exactly the operations of the window loop (:mod:`.rangefuncs`), in
the same order, and the answers are the same bit for bit. The cost is one
array pass per sample of the longest window, not one Python call per sample.

When every value of a batch is finite and too small for any running sum to
overflow (:func:`no_overflow`, nearly always), no sum can reach an infinity,
so the infinity branches of ``kahan_inc`` are never taken: :class:`_Sums`
then runs the same additions in place, into buffers allocated once, which
is about half the work of the general path and gives the same bits.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from soulwatch.promql import interrupts
from soulwatch.promql.ndtypes import Bools, Floats

if TYPE_CHECKING:
    from soulwatch.promql.columnar import Packed


#: ``active`` when every window has the sample: no masking needed.
_ALL: Any = np.True_


def _keep(active: Bools, new: Floats, old: Floats) -> Floats:
    """``new`` where ``active``, else ``old``."""
    return new if active is _ALL else np.where(active, new, old)


def kahan(inc: Floats, total: Floats, c: Floats) -> tuple[Floats, Floats]:
    """``kahan_inc`` on arrays: the same branches, taken per cell."""
    t = total + inc
    bigger = np.abs(total) >= np.abs(inc)
    grown = c + np.where(bigger, (total - t) + inc, (inc - t) + total)
    return t, np.where(np.isinf(t), 0.0, grown)


#: Bound on any running sum's magnitude under which no addition can overflow.
_SAFE_SUM = 2.0**1000


def no_overflow(p: Packed, x_bound: float = 1.0) -> bool:
    """True when every value is finite and no window's sums (of ``v``, ``x*v``,
    ``x*x`` with ``|x| <= x_bound``) can come near the largest float."""
    v = p.values
    if not v.size or not p.count.size:
        return False
    with np.errstate(all="ignore"):
        largest = float(np.max(np.abs(v)))
    if not np.isfinite(largest):
        return False  # a NaN or an infinity somewhere: the general path
    longest = float(p.count.max())
    scale = max(1.0, x_bound)
    return longest * max(largest, 1.0) * scale * scale < _SAFE_SUM


class _Sums:
    """Kahan-Neumaier running sums of one cell matrix, updated in place.

    Only for sums that never overflow (:func:`no_overflow`): ``kahan_inc``'s
    infinity branch cannot be taken. Neumaier's compensation term, ``(sum -
    t) + inc`` or ``(inc - t) + sum`` whichever of ``sum`` and ``inc`` is
    larger, is then the exact rounding error of ``t = sum + inc`` (Fast2Sum,
    exact when the first operand is the larger), and so is Knuth's branch-free
    TwoSum, exact for any order: an exact error is one float, and both give
    ``+0.0`` when it is zero. TwoSum takes fewer array passes and no mask.
    """

    __slots__ = ("_a", "_b", "_t", "c", "total")

    def __init__(self, first: Floats) -> None:
        self.total = first
        self.c = np.zeros_like(first)
        self._t = np.empty_like(first)
        self._a = np.empty_like(first)
        self._b = np.empty_like(first)

    def add(self, inc: Floats, active: Any) -> None:
        """Add ``inc`` in every cell where ``active`` (``_ALL``: everywhere)."""
        total, t, a, b = self.total, self._t, self._a, self._b
        np.add(total, inc, out=t)
        np.subtract(t, total, out=b)  # the part of inc that t took
        np.subtract(t, b, out=a)
        np.subtract(total, a, out=a)  # what total lost
        np.subtract(inc, b, out=b)  # what inc lost
        a += b
        if active is _ALL:
            self.c += a
            self.total, self._t = t, total
        else:
            np.add(self.c, a, out=self.c, where=active)
            np.copyto(total, t, where=active)

    def result(self) -> Floats:
        """The compensated sum, ``total + c`` (never infinite here)."""
        return self.total + self.c


#: Window positions walked between two looks at the query's timeout and cancel event.
CHECK_EVERY = 64


def positions(p: Packed, first: int = 0) -> Iterator[tuple[int, Floats, Bools]]:
    """``(k, value, active)``: the ``k``-th sample of every window, where it has one.

    ``active`` is the scalar ``True`` while every window still has a ``k``-th
    sample (regular scrapes: most positions), which spares the masking.
    """
    if not p.count.size:
        return
    shortest, longest = int(p.count.min()), int(p.count.max())
    for k in range(first, longest):
        if k % CHECK_EVERY == 0:
            interrupts.check()
        if k < shortest:
            yield k, p.values[p.lo + k], _ALL
            continue
        active = p.count > k
        yield k, p.values[np.where(active, p.lo + k, 0)], active


def _position_masks(count: Any, first: int = 0) -> Iterator[tuple[int, Any]]:
    """``(k, active)`` of :func:`positions` for windows of ``count`` samples, no gathering."""
    if not count.size:
        return
    shortest, longest = int(count.min()), int(count.max())
    for k in range(first, longest):
        if k % CHECK_EVERY == 0:
            interrupts.check()
        yield k, (_ALL if k < shortest else count > k)


#: Cells per tile of the in-place sums: their few buffers stay in the CPU's cache.
_TILE_CELLS = 1 << 14


def _tiles(p: Packed) -> Iterator[slice]:
    """Row ranges (series) of ``p``'s cell matrix, about ``_TILE_CELLS`` cells each."""
    rows, steps = p.count.shape
    per = max(1, _TILE_CELLS // max(1, steps))
    for first in range(0, rows, per):
        yield slice(first, first + per)


def _fast_sum(p: Packed) -> Floats:
    """``sum_values`` of every window with :class:`_Sums` (see :func:`no_overflow`)."""
    out = np.empty(p.count.shape)
    for rows in _tiles(p):
        lo, count = p.lo[rows], p.count[rows]
        sums = _Sums(p.values[np.where(count > 0, lo, 0)])
        at = np.empty(lo.shape, dtype=np.int64)
        v = np.empty(lo.shape)
        for k, active in _position_masks(count, 1):
            np.add(lo, k, out=at)
            if active is not _ALL:
                np.copyto(at, 0, where=~active)
            np.take(p.values, at, out=v, mode="clip")
            sums.add(v, active)
        out[rows] = sums.result()
    return out


def _first(p: Packed) -> Floats:
    return p.values[np.where(p.count > 0, p.lo, 0)]


def sum_over_time(p: Packed) -> Floats:
    """``sum_values`` of every window."""
    if no_overflow(p):
        return _fast_sum(p)
    total = _first(p)
    c = np.zeros_like(total)
    for _, v, active in positions(p, 1):
        t, grown = kahan(v, total, c)
        total = _keep(active, t, total)
        c = _keep(active, grown, c)
    return np.where(np.isinf(total), total, total + c)


def avg_over_time(p: Packed) -> Floats:
    """``avg_values`` of every window: a compensated sum, incremental once it overflows."""
    if no_overflow(p):
        # No sum overflows: the incremental mean never takes over.
        return _fast_sum(p) / p.count.astype(np.float64)
    first = _first(p)
    zeros = np.zeros_like(first)
    state: _MeanState = (first, zeros, zeros, np.zeros(first.shape, dtype=np.bool_))
    for k, v, active in positions(p, 1):
        state = _mean_add(v, float(k + 1), active, state)
    return _mean_result(*state, p.count.astype(np.float64))


#: ``avg_values``' running state: compensated sum, its compensation, incremental
#: mean, and where the incremental mean took over.
_MeanState = tuple[Floats, Floats, Floats, Bools]


def _mean_add(v: Floats, count: Any, adding: Bools, state: _MeanState) -> _MeanState:
    """Add ``v`` where ``adding`` (the ``count``-th value there) to ``avg_values``' state:
    a compensated sum, switching to the incremental mean where the sum overflows."""
    total, c, mean, incremental = state
    summing = adding & ~incremental
    new_total, new_c = kahan(v, total, c)
    fits = ~np.isinf(new_total)
    total = np.where(summing & fits, new_total, total)
    c = np.where(summing & fits, new_c, c)
    switch = summing & ~fits
    if switch.any():
        mean = np.where(switch, total / (count - 1), mean)
        c = np.where(switch, c / (count - 1), c)
        incremental = incremental | switch
    moving = adding & incremental
    if moving.any():
        mean, c = _incremental_mean(v, count, mean, c, moving)
    return total, c, mean, incremental


def _incremental_mean(
    v: Floats, count: Any, mean: Floats, c: Floats, moving: Bools
) -> tuple[Floats, Floats]:
    """One step of ``avg_values``' incremental mean where ``moving``."""
    # An infinite mean stays unless the sample is the opposite infinity or NaN.
    same_inf = np.isinf(v) & ((mean > 0) == (v > 0))
    finite = ~np.isinf(v) & ~np.isnan(v)
    moving = moving & ~(np.isinf(mean) & (same_inf | finite))
    current = mean + c
    new_mean, new_c = kahan(v / count - current / count, mean, c)
    return np.where(moving, new_mean, mean), np.where(moving, new_c, c)


def _mean_result(total: Floats, c: Floats, mean: Floats, incremental: Bools, n: Any) -> Floats:
    direct = np.where(np.isinf(total), total / n, (total + c) / n)
    return np.where(incremental, mean + c, direct)


#: Cells (members x steps) per block of :func:`_prefix_sum_rows`: bounded temporaries.
_BLOCK_CELLS = 1 << 17


def _rows_cannot_overflow(values: Floats, present: Bools) -> bool:
    """True when every present value is finite and no running sum down the rows can overflow."""
    if not values.size:
        return False
    with np.errstate(all="ignore"):
        largest = float(np.max(np.abs(np.where(present, values, 0.0))))
    return bool(np.isfinite(largest)) and values.shape[0] * max(largest, 1.0) < _SAFE_SUM


def _prefix_sum_rows(values: Floats, present: Bools) -> Floats:
    """``sum_values`` of the present values down the rows, per step column, without overflow.

    Only when :func:`_rows_cannot_overflow`. The running totals after each
    member are a prefix sum (``cumsum`` adds strictly in order); a missing
    member adds ``-0.0``, which leaves every total as it is, and before the
    first member the total is ``-0.0``, which the first value replaces
    exactly. Each addition's compensation term is then its exact rounding
    error (no overflow: see :class:`_Sums`), taken with TwoSum, and the
    compensation is the in-order sum of those terms from ``+0.0`` (an exact
    zero term, whatever its sign, cannot change it: it is never ``-0.0``).
    """
    rows, n = values.shape
    out = np.empty(n, dtype=np.float64)
    block = max(1, _BLOCK_CELLS // max(1, rows))
    for lo in range(0, n, block):
        v = np.where(present[:, lo : lo + block], values[:, lo : lo + block], -0.0)
        totals = np.cumsum(v, axis=0)
        before = np.empty_like(totals)
        before[0] = -0.0
        before[1:] = totals[:-1]
        took = totals - before  # the part of v the total took
        terms = (before - (totals - took)) + (v - took)
        out[lo : lo + block] = totals[-1] + np.cumsum(terms, axis=0)[-1]
    return out


def avg_rows(values: Floats, present: Bools) -> Floats:
    """``avg_values`` down the rows (one member series a row), per step column."""
    if _rows_cannot_overflow(values, present):
        # No running sum overflows: the incremental mean never takes over,
        # and the mean is the compensated sum over the count.
        mean: Floats = _prefix_sum_rows(values, present) / present.sum(axis=0)
        return mean
    shape = values.shape[1:]
    total, c, mean = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    count = np.zeros(shape)
    incremental = np.zeros(shape, dtype=np.bool_)
    for v, has in zip(values, present, strict=True):
        first = has & (count == 0)
        adding = has & ~first
        count = count + has
        total = np.where(first, v, total)
        total, c, mean, incremental = _mean_add(v, count, adding, (total, c, mean, incremental))
    return _mean_result(total, c, mean, incremental, count)


def stdvar_rows(values: Floats, present: Bools) -> Floats:
    """The ``stdvar`` aggregation down the rows, per step column (Welford, uncompensated)."""
    shape = values.shape[1:]
    count, mean, variance = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    for v, has in zip(values, present, strict=True):
        first = has & (count == 0)
        count = count + has
        delta = v - mean
        moved = mean + delta / count
        grown = variance + delta * (v - moved)
        mean = np.where(first, v, np.where(has, moved, mean))
        variance = np.where(
            first, np.where(np.isfinite(v), 0.0, np.nan), np.where(has, grown, variance)
        )
    return variance / count


def extreme_over_time(p: Packed, *, pick_max: bool) -> Floats:
    """min/max of every window; a NaN so far is replaced by the next sample."""
    out = _first(p)
    for _, v, active in positions(p, 1):
        better = (out < v) if pick_max else (out > v)
        out = np.where(active & (better | np.isnan(out)), v, out)
    return out


def ts_of_extreme_over_time(p: Packed, *, pick_max: bool) -> Floats:
    """When each window's min/max was last reached, in seconds; NaN so far is replaced."""
    best = _first(p)
    best_at = np.where(p.count > 0, p.lo, 0)
    for k, v, active in positions(p, 1):
        # A tie moves to the later sample, as the window loop's ``>=``/``<=``.
        better = (v >= best) if pick_max else (v <= best)
        take = active & (better | np.isnan(best))
        best = np.where(take, v, best)
        best_at = np.where(take, p.lo + k, best_at)
    return p.times[best_at] / 1000


def stdvar_over_time(p: Packed) -> Floats:
    """``stdvar_values`` of every window (Welford with compensated sums)."""
    shape = p.count.shape
    mean, c_mean = np.zeros(shape), np.zeros(shape)
    aux, c_aux = np.zeros(shape), np.zeros(shape)
    for k, v, active in positions(p):
        count = float(k + 1)
        delta = v - (mean + c_mean)
        new_mean, new_c_mean = kahan(delta / count, mean, c_mean)
        mean = _keep(active, new_mean, mean)
        c_mean = _keep(active, new_c_mean, c_mean)
        new_aux, new_c_aux = kahan(delta * (v - (mean + c_mean)), aux, c_aux)
        aux = _keep(active, new_aux, aux)
        c_aux = _keep(active, new_c_aux, c_aux)
    return (aux + c_aux) / p.count.astype(np.float64)


def linear_regression(p: Packed, intercept_t: Any) -> tuple[Floats, Floats]:
    """Least-squares slope (per second) and intercept at ``intercept_t`` of every window.

    ``intercept_t`` is one int64 time per cell (the window's first sample for
    ``deriv``, the step's time for ``predict_linear``).
    """
    intercept = np.asarray(intercept_t, dtype=np.int64)
    if p.times.size:
        reach = max(
            abs(int(p.times.max()) - int(intercept.min())),
            abs(int(p.times.min()) - int(intercept.max())),
        )
        if no_overflow(p, reach / 1e3):
            return _fit(p, _fast_sums(p, intercept))
    shape = p.count.shape
    sum_x, c_x = np.zeros(shape), np.zeros(shape)
    sum_y, c_y = np.zeros(shape), np.zeros(shape)
    sum_xy, c_xy = np.zeros(shape), np.zeros(shape)
    sum_x2, c_x2 = np.zeros(shape), np.zeros(shape)
    init_y = _first(p)
    const_y = np.ones(shape, dtype=np.bool_)
    for k, y, active in positions(p):
        if k:
            const_y &= ~active | (y == init_y)
        at = p.lo + k if active is _ALL else np.where(active, p.lo + k, 0)
        x = (p.times[at] - intercept_t) / 1e3
        for total, comp, inc in (
            (sum_x, c_x, x),
            (sum_y, c_y, y),
            (sum_xy, c_xy, x * y),
            (sum_x2, c_x2, x * x),
        ):
            t, grown = kahan(inc, total, comp)
            if active is _ALL:
                np.copyto(total, t)
                np.copyto(comp, grown)
            else:
                np.copyto(total, t, where=active)
                np.copyto(comp, grown, where=active)
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    return _fit(p, (sum_x, sum_y, sum_xy, sum_x2, init_y, const_y))


def _shared_times(p: Packed) -> bool:
    """True when every series of ``p`` has the same sample times (one target's series)."""
    n, total = len(p.starts), len(p.times)
    if n < 2 or total % n:
        return False
    length = total // n
    if not (p.starts == np.arange(n, dtype=np.int64) * length).all():
        return False
    grid = p.times.reshape(n, length)
    return bool((grid == grid[0]).all())


def _fast_sums(p: Packed, intercept_t: Any) -> tuple[Any, ...]:
    """:func:`linear_regression`'s four compensated sums, in place (no overflow possible).

    When every series has the same sample times, each window's ``x`` values
    (and so the sums of ``x`` and ``x*x``) are the same in every row: they
    are computed for the first row of each tile and shared.
    """
    shape = p.count.shape
    out = [np.empty(shape) for _ in range(4)]
    init_all = _first(p)
    const_all = np.ones(shape, dtype=np.bool_)
    intercept_all = np.broadcast_to(intercept_t, shape)
    shared = _shared_times(p)
    for rows in _tiles(p):
        lo, count, intercept = p.lo[rows], p.count[rows], intercept_all[rows]
        init_y = init_all[rows]
        const_y = const_all[rows]  # a view: updated in place
        # The rows x is computed over: the first alone when the times are shared.
        x_rows = slice(0, 1) if shared else slice(None)
        x_lo, x_intercept = lo[x_rows], intercept[x_rows]
        sum_y, sum_xy = _Sums(np.zeros_like(init_y)), _Sums(np.zeros_like(init_y))
        sum_x = _Sums(np.zeros(x_lo.shape))
        sum_x2 = _Sums(np.zeros(x_lo.shape))
        at = np.empty(lo.shape, dtype=np.int64)
        x_at = np.empty(x_lo.shape, dtype=np.int64)
        dt = np.empty(x_lo.shape, dtype=np.int64)
        x, x2 = np.empty(x_lo.shape), np.empty(x_lo.shape)
        y, xy = np.empty_like(init_y), np.empty_like(init_y)
        same = np.empty(lo.shape, dtype=np.bool_)
        for k, active in _position_masks(count):
            np.add(lo, k, out=at)
            if active is not _ALL:
                np.copyto(at, 0, where=~active)
            # Every index is inside the arrays: "clip" only spares take() a buffered copy.
            np.take(p.values, at, out=y, mode="clip")
            if k:
                np.equal(y, init_y, out=same)
                if active is not _ALL:
                    same |= ~active
                const_y &= same
            x_active = active if active is _ALL else active[x_rows]
            if shared:
                np.add(x_lo, k, out=x_at)
                if x_active is not _ALL:
                    np.copyto(x_at, 0, where=~x_active)
            else:
                x_at = at
            np.take(p.times, x_at, out=dt, mode="clip")
            dt -= x_intercept
            np.divide(dt, 1e3, out=x)
            np.multiply(x, y, out=xy)
            np.multiply(x, x, out=x2)
            sum_x.add(x, x_active)
            sum_y.add(y, active)
            sum_xy.add(xy, active)
            sum_x2.add(x2, x_active)
        for total, sums_of in zip(out, (sum_x, sum_y, sum_xy, sum_x2), strict=True):
            total[rows] = sums_of.result()
    return (*out, init_all, const_all)


def _fit(p: Packed, sums: tuple[Any, ...]) -> tuple[Floats, Floats]:
    """Slope and intercept from the sums of x, y, xy, x*x (and the flat-line check)."""
    sum_x, sum_y, sum_xy, sum_x2, init_y, const_y = sums
    n = p.count.astype(np.float64)
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = np.where(var_x != 0, cov_xy / np.where(var_x != 0, var_x, 1.0), np.nan)
    intercept = sum_y / n - slope * sum_x / n
    flat_slope = np.where(np.isinf(init_y), np.nan, 0.0)
    flat_intercept = np.where(np.isinf(init_y), np.nan, init_y)
    return np.where(const_y, flat_slope, slope), np.where(const_y, flat_intercept, intercept)
