"""Functions over range vectors: rate and friends, and the ``*_over_time`` family.

Each takes one series' sorted sample times ``st`` and values ``sv`` and the
window ``[lo, hi)`` of indices falling in ``(start, end]``, and returns the
value at that step or ``None`` for no sample. Passing indices instead of
slices keeps a range query from copying every window.
"""

from __future__ import annotations

import itertools
import math
import operator
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.aggregations import (
    avg_values,
    go_sqrt,
    quantile,
    stdvar_values,
    sum_values,
)
from soulwatch.promql.stepvec import kahan_inc

_R = float | None


class Window:
    """One series' samples and the index window ``[lo, hi)`` of one step.

    The engine reuses one instance per call and only moves its fields, so a
    range query does not allocate per step.
    """

    __slots__ = ("end", "hi", "lo", "params", "st", "start", "step_t", "sv")

    def __init__(self) -> None:
        self.st: Sequence[int] = ()
        self.sv: Sequence[float] = ()
        self.lo = 0
        self.hi = 0
        self.start = 0
        self.end = 0
        self.step_t = 0
        self.params: tuple[float, ...] = ()

    def series(self, st: Sequence[int], sv: Sequence[float]) -> None:
        """Move to another series."""
        self.st = st
        self.sv = sv


#: ``fn(window) -> value`` (``None``: no sample at this step)
WindowFunc = Callable[[Window], float | None]
_Rs = list[float | None]
SeriesFunc = Callable[[Sequence[int], Sequence[float], Sequence[int], int], _Rs]


@dataclass(frozen=True)
class RangeFunction:
    """A function over a range vector: which argument is the range, whether it keeps names."""

    fn: WindowFunc
    matrix_arg: int = 0
    keeps_name: bool = False
    counter: bool = False  # rate/increase: emit the "might not be a counter" info
    #: Optional whole-series form ``(st, sv, window_ends, range_ms) -> values``.
    series_fn: SeriesFunc | None = None


def extrapolated_series(
    st: Sequence[int],
    sv: Sequence[float],
    ends: Sequence[int],
    range_ms: int,
    *,
    is_counter: bool,
    is_rate: bool,
) -> list[float | None]:
    """rate/increase/delta of one series at every window end, in one tight loop.

    Prometheus's extrapolation: the change over the window (counter resets
    added back), stretched to the window's edges when the first/last sample
    is within 1.1 average intervals of them, else by half an interval; a
    counter is not extrapolated below zero.
    """
    out: list[float | None] = []
    add = out.append
    range_s = range_ms / 1000
    single = len(ends) == 1
    drops: Sequence[int] = ()
    if is_counter and not single:
        drops = list(itertools.accumulate(map(operator.lt, sv[1:], sv[:-1]), initial=0))
    # Window ends ascend (or repeat, under @): each search starts where the last
    # one ended instead of at the series' first sample.
    ascending = all(map(operator.le, ends, itertools.islice(ends, 1, None)))
    lo = hi = 0
    for end in ends:
        start = end - range_ms
        if ascending:
            lo = bisect_right(st, start, lo)
            hi = bisect_right(st, end, hi)
        else:
            lo = bisect_right(st, start)
            hi = bisect_right(st, end)
        if hi - lo < 2:
            add(None)
            continue
        first = sv[lo]
        result = sv[hi - 1] - first
        if is_counter:
            if single:
                # One window (a rule's instant query): test just it for a reset.
                reset = any(map(operator.lt, islice(sv, lo + 1, hi), islice(sv, lo, hi - 1)))
            else:
                reset = drops[hi - 1] != drops[lo]
            if reset:
                prev = first
                for k in range(lo + 1, hi):
                    v = sv[k]
                    if v < prev:
                        result += prev
                    prev = v
        first_t = st[lo]
        last_t = st[hi - 1]
        to_start = (first_t - start) / 1000
        to_end = (end - last_t) / 1000
        sampled = (last_t - first_t) / 1000
        average = sampled / (hi - lo - 1)
        threshold = average * 1.1
        if to_start >= threshold:
            to_start = average / 2
        if is_counter and result > 0 and first >= 0:
            to_zero = sampled * (first / result)
            to_start = min(to_start, to_zero)
        if to_end >= threshold:
            to_end = average / 2
        factor = (sampled + to_start + to_end) / sampled
        if is_rate:
            factor /= range_s
        add(result * factor)
    return out


def _rate_series(st: Sequence[int], sv: Sequence[float], ends: Sequence[int], r: int) -> _Rs:
    return extrapolated_series(st, sv, ends, r, is_counter=True, is_rate=True)


def _increase_series(st: Sequence[int], sv: Sequence[float], ends: Sequence[int], r: int) -> _Rs:
    return extrapolated_series(st, sv, ends, r, is_counter=True, is_rate=False)


def _delta_series(st: Sequence[int], sv: Sequence[float], ends: Sequence[int], r: int) -> _Rs:
    return extrapolated_series(st, sv, ends, r, is_counter=False, is_rate=False)


def _unused(w: Window) -> _R:
    raise AssertionError("evaluated through its series function")


def _instant(
    st: Sequence[int], sv: Sequence[float], lo: int, hi: int, *, is_rate: bool
) -> float | None:
    if hi - lo < 2:
        return None
    last, prev = sv[hi - 1], sv[hi - 2]
    result = last if is_rate and last < prev else last - prev
    if is_rate:
        interval = st[hi - 1] - st[hi - 2]
        if interval == 0:
            return None
        result /= interval / 1000
    return result


def _irate(w: Window) -> _R:
    st, sv, lo, hi = w.st, w.sv, w.lo, w.hi
    return _instant(st, sv, lo, hi, is_rate=True)


def _idelta(w: Window) -> _R:
    st, sv, lo, hi = w.st, w.sv, w.lo, w.hi
    return _instant(st, sv, lo, hi, is_rate=False)


def linear_regression(
    st: Sequence[int], sv: Sequence[float], lo: int, hi: int, intercept_t: int
) -> tuple[float, float]:
    """Least-squares slope (per second) and intercept at ``intercept_t``."""
    n = 0.0
    sum_x = c_x = sum_y = c_y = sum_xy = c_xy = sum_x2 = c_x2 = 0.0
    init_y = sv[lo]
    const_y = True
    for k in range(lo, hi):
        y = sv[k]
        if const_y and k > lo and y != init_y:
            const_y = False
        n += 1.0
        x = (st[k] - intercept_t) / 1e3
        sum_x, c_x = kahan_inc(x, sum_x, c_x)
        sum_y, c_y = kahan_inc(y, sum_y, c_y)
        sum_xy, c_xy = kahan_inc(x * y, sum_xy, c_xy)
        sum_x2, c_x2 = kahan_inc(x * x, sum_x2, c_x2)
    if const_y:
        if math.isinf(init_y):
            return math.nan, math.nan
        return 0.0, init_y
    sum_x += c_x
    sum_y += c_y
    sum_xy += c_xy
    sum_x2 += c_x2
    cov_xy = sum_xy - sum_x * sum_y / n
    var_x = sum_x2 - sum_x * sum_x / n
    slope = cov_xy / var_x if var_x != 0 else math.nan
    intercept = sum_y / n - slope * sum_x / n
    return slope, intercept


def _deriv(w: Window) -> _R:
    st, sv, lo, hi = w.st, w.sv, w.lo, w.hi
    if hi - lo < 2:
        return None
    return linear_regression(st, sv, lo, hi, st[lo])[0]


def _predict_linear(w: Window) -> _R:
    st, sv, lo, hi = w.st, w.sv, w.lo, w.hi
    if hi - lo < 2:
        return None
    slope, intercept = linear_regression(st, sv, lo, hi, w.step_t)
    return slope * w.params[0] + intercept


def _resets(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    count = 0
    prev = sv[lo]
    for k in range(lo + 1, hi):
        v = sv[k]
        if v < prev:
            count += 1
        prev = v
    return float(count)


def _changes(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    count = 0
    prev = sv[lo]
    for k in range(lo + 1, hi):
        v = sv[k]
        if not (v == prev or (math.isnan(v) and math.isnan(prev))):
            count += 1
        prev = v
    return float(count)


def _values(sv: Sequence[float], lo: int, hi: int) -> list[float]:
    return list(sv[lo:hi])


def _avg_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    return avg_values(_values(sv, lo, hi))


def _sum_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    return sum_values(_values(sv, lo, hi))


def _min_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    out = sv[lo]
    for k in range(lo + 1, hi):
        v = sv[k]
        if out > v or math.isnan(out):
            out = v
    return out


def _max_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    out = sv[lo]
    for k in range(lo + 1, hi):
        v = sv[k]
        if out < v or math.isnan(out):
            out = v
    return out


def _count_over_time(w: Window) -> _R:
    lo, hi = w.lo, w.hi
    return float(hi - lo)


def _last_over_time(w: Window) -> _R:
    sv, hi = w.sv, w.hi
    return sv[hi - 1]


def _first_over_time(w: Window) -> _R:
    sv, lo = w.sv, w.lo
    return sv[lo]


def _ts_of_last(w: Window) -> _R:
    st, hi = w.st, w.hi
    return st[hi - 1] / 1000


def _ts_of_first(w: Window) -> _R:
    st, lo = w.st, w.lo
    return st[lo] / 1000


def _ts_of_extreme(pick_max: bool) -> WindowFunc:
    def fn(w: Window) -> _R:
        st, sv, lo, hi = w.st, w.sv, w.lo, w.hi
        best = sv[lo]
        best_t = st[lo]
        for k in range(lo + 1, hi):
            v = sv[k]
            better = v >= best if pick_max else v <= best
            if better or math.isnan(best):
                best, best_t = v, st[k]
        return best_t / 1000

    return fn


def _present_over_time(w: Window) -> _R:
    return 1.0


def _stdvar_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    return stdvar_values(_values(sv, lo, hi))


def _stddev_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    return go_sqrt(stdvar_values(_values(sv, lo, hi)))


def _quantile_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    return quantile(w.params[0], _values(sv, lo, hi))


def _mad_over_time(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    values = _values(sv, lo, hi)
    if any(math.isnan(v) for v in values):
        return math.nan
    median = quantile(0.5, values)
    return quantile(0.5, [abs(v - median) for v in values])


def _double_exponential_smoothing(w: Window) -> _R:
    sv, lo, hi = w.sv, w.lo, w.hi
    sf, tf = w.params
    if not 0 < sf < 1:
        raise EvaluationError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise EvaluationError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    if hi - lo < 2:
        return None
    s0 = 0.0
    s1 = sv[lo]
    b = sv[lo + 1] - sv[lo]
    for i in range(1, hi - lo):
        x = sf * sv[lo + i]
        if i - 1 != 0:
            b = tf * (s1 - s0) + (1 - tf) * b
        y = (1 - sf) * (s1 + b)
        s0, s1 = s1, x + y
    return s1


RANGE_FUNCTIONS: dict[str, RangeFunction] = {
    "rate": RangeFunction(_unused, counter=True, series_fn=_rate_series),
    "increase": RangeFunction(_unused, counter=True, series_fn=_increase_series),
    "delta": RangeFunction(_unused, series_fn=_delta_series),
    "irate": RangeFunction(_irate),
    "idelta": RangeFunction(_idelta),
    "deriv": RangeFunction(_deriv),
    "predict_linear": RangeFunction(_predict_linear),
    "resets": RangeFunction(_resets),
    "changes": RangeFunction(_changes),
    "avg_over_time": RangeFunction(_avg_over_time),
    "sum_over_time": RangeFunction(_sum_over_time),
    "min_over_time": RangeFunction(_min_over_time),
    "max_over_time": RangeFunction(_max_over_time),
    "count_over_time": RangeFunction(_count_over_time),
    "last_over_time": RangeFunction(_last_over_time, keeps_name=True),
    "first_over_time": RangeFunction(_first_over_time, keeps_name=True),
    "ts_of_last_over_time": RangeFunction(_ts_of_last),
    "ts_of_first_over_time": RangeFunction(_ts_of_first),
    "ts_of_max_over_time": RangeFunction(_ts_of_extreme(True)),
    "ts_of_min_over_time": RangeFunction(_ts_of_extreme(False)),
    "present_over_time": RangeFunction(_present_over_time),
    "stdvar_over_time": RangeFunction(_stdvar_over_time),
    "stddev_over_time": RangeFunction(_stddev_over_time),
    "quantile_over_time": RangeFunction(_quantile_over_time, matrix_arg=1),
    "mad_over_time": RangeFunction(_mad_over_time),
    "double_exponential_smoothing": RangeFunction(_double_exponential_smoothing),
}
