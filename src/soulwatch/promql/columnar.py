"""Range-vector functions over every step of many series at once, with numpy.

The step-by-step window loop (:mod:`.rangefuncs`) calls a Python function
per series and per step; a chart's range query makes that millions of calls.
Here a batch of series is packed into flat arrays (sample times, values,
where each series starts), every window of every step is found with one
``searchsorted``, and the function is computed with whole-array operations.

The answers are the window loop's, bit for bit: each float is computed by
the same IEEE operations in the same order (an int64 millisecond difference
converts to float exactly, as Python's ``int / int`` does); a window holding
several counter resets adds them back one by one, in order. Functions whose
exact result needs an in-order compensated sum per window (the Kahan
``*_over_time`` sums, ``deriv``, ``predict_linear``) walk the windows by
position (:mod:`.windowsums`); the order statistics (``quantile_over_time``,
``mad_over_time``) sort every window as one matrix row (:mod:`.windowranks`).
Without numpy, :func:`evaluate` answers ``None`` and the engine uses the
window loop.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from itertools import repeat
from operator import attrgetter
from typing import Any, cast, overload

from soulwatch.promql.ndtypes import Bools, Floats, Ints
from soulwatch.promql.stepvec import RangeSeries, StepSeries
from soulwatch.tsdb.model import Labels

try:
    import numpy as np

    from soulwatch.promql import stepcols, windowranks, windowsmooth, windowsums
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    np = None  # type: ignore[assignment]


#: The functions computed here; the rest stay on the window loop.
VECTORISED = frozenset(
    {
        "rate",
        "increase",
        "delta",
        "irate",
        "idelta",
        "resets",
        "changes",
        "count_over_time",
        "last_over_time",
        "first_over_time",
        "ts_of_last_over_time",
        "ts_of_first_over_time",
        "ts_of_min_over_time",
        "ts_of_max_over_time",
        "present_over_time",
        "sum_over_time",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "stdvar_over_time",
        "stddev_over_time",
        "deriv",
        "predict_linear",
        "quantile_over_time",
        "mad_over_time",
        "double_exponential_smoothing",
    }
)

_TYPECODE = attrgetter("typecode")
_FORMAT = attrgetter("format")
_TS = attrgetter("ts")
_LABELS = attrgetter("labels")
_DROP_NAME = attrgetter("drop_name")
_VALS = attrgetter("vals")

#: Cells (series x steps) per batch: bounds the temporaries to a few MiB each.
BATCH_CELLS = 1 << 17

#: Segment keys ``series * width + time`` must stay well inside int64.
_MAX_KEY = 1 << 62


def available() -> bool:
    """True when numpy is installed, so range functions can be vectorised."""
    return np is not None


def _flat(columns: Sequence[Sequence[Any]], typecode: str, dtype: Any) -> Any:
    """One array of every column, end to end.

    Columns that are already ``array(typecode)`` (the TSDB's) are joined as
    bytes in one call, with no numpy call (nor Python step) per series.
    """
    if not columns:
        return np.zeros(0, dtype=dtype)
    if set(map(type, columns)) == {array} and set(map(_TYPECODE, columns)) == {typecode}:
        return np.frombuffer(b"".join(columns), dtype=dtype)  # type: ignore[arg-type]
    if set(map(type, columns)) == {memoryview} and set(map(_FORMAT, columns)) == {typecode}:
        return np.frombuffer(b"".join(columns), dtype=dtype)  # type: ignore[arg-type]  # head views
    return np.concatenate([np.asarray(c, dtype=dtype) for c in columns])


def latest_of(lengths: Ints) -> Ints:
    """The index of each series' last sample in a batch of series of ``lengths`` (all > 0)."""
    return np.cumsum(lengths) - 1


def any_nan(columns: Sequence[Sequence[float]]) -> bool:
    """Whether any value of any column is NaN, in one pass (``True`` without numpy)."""
    if np is None or not columns:
        return bool(columns)
    return bool(np.isnan(_flat(columns, "d", np.float64)).any())


class RangeBatch(Sequence[RangeSeries]):
    """A range selector's series kept end to end, as the storage selected them.

    Series ``i`` is ``labels[i]`` with ``lengths[i]`` samples of ``times``
    and ``values`` from its start; none is empty and none is flagged to drop
    its name. :class:`Packed` reads the joined arrays as they are (no Python
    step per series); a reader that indexes or iterates gets
    :class:`RangeSeries` with ``array`` columns, cut once on first use.
    """

    def __init__(self, labels: list[Labels], times: Ints, values: Floats, lengths: Ints) -> None:
        self.labels = labels
        self.times = times
        self.values = values
        self.lengths = lengths
        self._rows: list[RangeSeries] | None = None

    @classmethod
    def without_nan(
        cls, labels: list[Labels], times: Ints, values: Floats, lengths: Ints
    ) -> RangeBatch | None:
        """The batch, or ``None`` when a value is NaN (it may be a staleness marker)."""
        if np.isnan(values).any():
            return None
        return cls(labels, times, values, lengths)

    def __len__(self) -> int:
        return len(self.labels)

    @overload
    def __getitem__(self, index: int) -> RangeSeries: ...

    @overload
    def __getitem__(self, index: slice) -> RangeBatch: ...

    def __getitem__(self, index: int | slice) -> RangeSeries | RangeBatch:
        if isinstance(index, int):
            return self.rows()[index]
        first, stop, stride = index.indices(len(self.labels))
        if stride != 1:
            raise ValueError("a batch is sliced in order")
        stop = max(first, stop)
        ends = np.cumsum(self.lengths)
        lo = int(ends[first - 1]) if first else 0
        hi = int(ends[stop - 1]) if stop > first else lo
        return RangeBatch(
            self.labels[first:stop], self.times[lo:hi], self.values[lo:hi], self.lengths[first:stop]
        )

    def __iter__(self) -> Iterator[RangeSeries]:
        return iter(self.rows())

    def rows(self) -> list[RangeSeries]:
        """One :class:`RangeSeries` per series (``array('q')`` times, ``array('d')`` values)."""
        if self._rows is None:
            times = array("q")
            times.frombytes(np.ascontiguousarray(self.times, dtype=np.int64).tobytes())
            values = array("d")
            values.frombytes(np.ascontiguousarray(self.values, dtype=np.float64).tobytes())
            rows = []
            start = 0
            for labels, n in zip(self.labels, self.lengths.tolist(), strict=True):
                stop = start + n
                rows.append(RangeSeries(labels, times[start:stop], values[start:stop]))
                start = stop
            self._rows = rows
        return self._rows


class Packed:
    """A batch of series as flat arrays, and each step's window in each series.

    ``lo`` and ``hi`` (shape ``series x steps``) are flat indices: the window
    of series ``i`` at step ``k`` is ``times[lo[i, k]:hi[i, k]]``, the samples
    in ``(end - range, end]`` exactly as ``bisect_right`` finds them.
    """

    def __init__(self, series: Sequence[RangeSeries], ends: Sequence[int], range_ms: int) -> None:
        if isinstance(series, RangeBatch):
            # Already end to end, as the storage selected it.
            lengths = series.lengths
            self.times: Ints = series.times
            self.values: Floats = series.values
        else:
            times = list(map(_TS, series))
            lengths = np.fromiter(map(len, times), dtype=np.int64, count=len(series))
            # A storage that hands out arrays (``array.array``, numpy) is read
            # through the buffer protocol without a per-sample step; lists convert.
            self.times = _flat(times, "q", np.int64)
            self.values = _flat(list(map(_VALS, series)), "d", np.float64)
        total = int(lengths.sum())
        self.starts: Ints = np.zeros(len(series), dtype=np.int64)
        np.cumsum(lengths[:-1], out=self.starts[1:])
        #: True at the first sample of each series (no previous sample to compare).
        self.first: Bools = np.zeros(total, dtype=np.bool_)
        self.first[self.starts[lengths > 0]] = True
        end_arr = np.asarray(ends, dtype=np.int64)
        # One sorted key per sample, series after series, so one searchsorted
        # finds every window of every series.
        base = min(int(self.times.min()), int(end_arr.min()) - range_ms)
        width = max(int(self.times.max()), int(end_arr.max())) - base + 1
        if width * (len(series) + 1) >= _MAX_KEY:
            raise OverflowError("time span too wide to pack")
        seg = np.repeat(np.arange(len(series), dtype=np.int64) * width, lengths)
        keys = seg + (self.times - base)
        row = (np.arange(len(series), dtype=np.int64) * width)[:, None]
        end_keys = row + (end_arr - base)[None, :]
        self.hi: Ints = np.searchsorted(keys, end_keys, side="right")
        lag = _lag(end_arr, range_ms)
        if lag:
            # Evenly spaced ends and a range of whole steps: a window starts
            # where the one ``lag`` steps earlier ends, so only the first
            # ``lag`` starts need a search.
            self.lo: Ints = np.empty_like(self.hi)
            self.lo[:, lag:] = self.hi[:, :-lag]
            self.lo[:, :lag] = np.searchsorted(keys, end_keys[:, :lag] - range_ms, side="right")
        else:
            self.lo = np.searchsorted(keys, end_keys - range_ms, side="right")
        self.count: Ints = self.hi - self.lo
        self.ends: Ints = np.broadcast_to(end_arr, self.lo.shape)
        self.range_ms = range_ms

    def flagged_between(self, flags: Bools) -> Ints:
        """How many ``flags`` are set at indices ``lo + 1 .. hi - 1`` of each window."""
        running = np.cumsum(flags, dtype=np.int64)
        some = self.count > 0
        first = np.where(some, self.lo, 0)
        last = np.where(some, self.hi - 1, 0)
        return running[last] - running[first]

    def drops(self) -> Bools:
        """True where a sample is below the one before it in the same series (a reset)."""
        v = self.values
        out = np.zeros(len(v), dtype=np.bool_)
        out[1:] = v[1:] < v[:-1]
        out &= ~self.first
        return out


def _lag(ends: Ints, range_ms: int) -> int:
    """How many steps back the window start's ``end - range`` is itself a step's end (0: none)."""
    if len(ends) < 2:
        return 0
    step = int(ends[1] - ends[0])
    if step <= 0 or range_ms % step or not (np.diff(ends) == step).all():
        return 0
    lag = range_ms // step
    return lag if lag < len(ends) else 0


def evaluate(
    name: str,
    series: Sequence[RangeSeries],
    ends: Sequence[int],
    range_ms: int,
    *,
    keeps_name: bool,
    step_times: Sequence[int] = (),
    params: Sequence[Sequence[float]] = (),
) -> list[StepSeries] | None:
    """``name`` over every window of ``series``; ``None`` when it is not vectorised here.

    ``step_times`` (the evaluation time of each window) and ``params`` (each
    scalar argument, one value per step) are read by ``predict_linear``.
    Series with no value at any step are left out, as the window loop does.
    """
    if np is None or name not in VECTORISED:
        return None
    out: list[StepSeries] = []
    if not isinstance(series, RangeBatch):
        # A series with no samples has no value at any step (a batch has none).
        series = list(filter(_TS, series))
    per_batch = max(1, BATCH_CELLS // max(1, len(ends)))
    keep_rows = len(ends) > 1
    with np.errstate(all="ignore"):
        for first in range(0, len(series), per_batch):
            batch = series[first : first + per_batch]
            try:
                packed = Packed(batch, ends, range_ms)
            except OverflowError:
                return None
            values, valid = _compute(name, packed, step_times, params)
            drop = not keeps_name
            if keep_rows:
                # Each row stays an array (the series' column); ``vals`` is
                # built only if a reader needs Python floats.
                full = cast("list[bool]", valid.all(axis=1).tolist())
                labels, drops = _labels_and_drops(batch)
                for index in np.flatnonzero(valid.any(axis=1)).tolist():
                    column = (values[index], valid[index], full[index])
                    out.append(StepSeries(labels[index], None, drops[index] or drop, column))
                continue
            # One step (an instant query): one value per series, in one call,
            # and the series built without a Python loop step of ours each.
            present = valid[:, 0]
            labels, drops = _labels_and_drops(batch)
            if present.all():
                kept, kept_drops, firsts = labels, drops, values[:, 0].tolist()
            else:
                rows = np.flatnonzero(present).tolist()
                kept = [labels[i] for i in rows]
                kept_drops = [drops[i] for i in rows]
                firsts = values[rows, 0].tolist()
            flags = repeat(True) if drop else kept_drops
            out.extend(map(StepSeries, kept, [[v] for v in firsts], flags))
    return out


def _labels_and_drops(batch: Sequence[RangeSeries]) -> tuple[list[Labels], list[bool]]:
    """Each series' labels and whether its name is still to drop."""
    if isinstance(batch, RangeBatch):
        return batch.labels, [False] * len(batch)
    return list(map(_LABELS, batch)), list(map(_DROP_NAME, batch))


def _compute(
    name: str, p: Packed, step_times: Sequence[int], params: Sequence[Sequence[float]]
) -> tuple[Floats, Bools]:
    """The function's value and whether there is one, per series and step."""
    if name in ("rate", "increase", "delta"):
        return _extrapolated(p, is_counter=name != "delta", is_rate=name == "rate")
    if name in ("irate", "idelta"):
        return _instant(p, is_rate=name == "irate")
    if name in ("deriv", "predict_linear"):
        return _regression(name, p, step_times, params)
    valid = p.count > 0
    if name == "quantile_over_time":
        q = np.asarray(params[0][: p.lo.shape[1]], dtype=np.float64)
        return windowranks.quantile_over_time(p, q), valid
    if name == "mad_over_time":
        return windowranks.mad_over_time(p), valid
    if name == "double_exponential_smoothing":
        return windowsmooth.double_exponential_smoothing(p, params)
    summed = _summed(name, p)
    if summed is not None:
        return summed, valid
    last = np.where(valid, p.hi - 1, 0)
    first = np.where(valid, p.lo, 0)
    if name == "resets":
        return p.flagged_between(p.drops()).astype(np.float64), valid
    if name == "changes":
        v = p.values
        changed = np.zeros(len(v), dtype=np.bool_)
        same = (v[1:] == v[:-1]) | (np.isnan(v[1:]) & np.isnan(v[:-1]))
        changed[1:] = ~same
        changed &= ~p.first
        return p.flagged_between(changed).astype(np.float64), valid
    if name == "count_over_time":
        return p.count.astype(np.float64), valid
    if name == "last_over_time":
        return p.values[last], valid
    if name == "first_over_time":
        return p.values[first], valid
    if name == "ts_of_last_over_time":
        return p.times[last] / 1000, valid
    if name == "ts_of_first_over_time":
        return p.times[first] / 1000, valid
    if name == "present_over_time":
        return np.ones(p.lo.shape, dtype=np.float64), valid
    raise AssertionError(f"{name} is not vectorised")  # pragma: no cover - VECTORISED


def _summed(name: str, p: Packed) -> Floats | None:
    """The ``*_over_time`` functions that fold every sample of the window, by position."""
    if name == "sum_over_time":
        return windowsums.sum_over_time(p)
    if name == "avg_over_time":
        return windowsums.avg_over_time(p)
    if name in ("min_over_time", "max_over_time"):
        return windowsums.extreme_over_time(p, pick_max=name == "max_over_time")
    if name == "stdvar_over_time":
        return windowsums.stdvar_over_time(p)
    if name == "stddev_over_time":
        return np.sqrt(windowsums.stdvar_over_time(p))
    if name in ("ts_of_min_over_time", "ts_of_max_over_time"):
        return windowsums.ts_of_extreme_over_time(p, pick_max=name == "ts_of_max_over_time")
    return None


def _regression(
    name: str, p: Packed, step_times: Sequence[int], params: Sequence[Sequence[float]]
) -> tuple[Floats, Bools]:
    """deriv (slope at the window's first sample) and predict_linear (at the step's time)."""
    valid = p.count >= 2
    if name == "deriv":
        return windowsums.linear_regression(p, p.times[np.where(valid, p.lo, 0)])[0], valid
    steps = p.lo.shape[1]
    at = np.asarray(step_times[:steps], dtype=np.int64)[None, :]
    slope, intercept = windowsums.linear_regression(p, at)
    horizon = np.asarray(params[0][:steps], dtype=np.float64)[None, :]
    return slope * horizon + intercept, valid


def _instant(p: Packed, *, is_rate: bool) -> tuple[Floats, Bools]:
    """irate/idelta: the last two samples of each window."""
    valid = p.count >= 2
    last_i = np.where(valid, p.hi - 1, 0)
    prev_i = np.maximum(last_i - 1, 0)
    last, prev = p.values[last_i], p.values[prev_i]
    if not is_rate:
        return last - prev, valid
    result = np.where(last < prev, last, last - prev)
    interval = p.times[last_i] - p.times[prev_i]
    valid &= interval != 0
    return result / (interval / 1000), valid


def _extrapolated(p: Packed, *, is_counter: bool, is_rate: bool) -> tuple[Floats, Bools]:
    """rate/increase/delta with Prometheus's extrapolation, as ``extrapolated_series``."""
    n = p.count
    valid = n >= 2
    lo = np.where(valid, p.lo, 0)
    last_i = np.where(valid, p.hi - 1, 0)
    v, t = p.values, p.times
    first = v[lo]
    result = v[last_i] - first
    if is_counter:
        drops = p.drops()
        resets = np.where(valid, p.flagged_between(drops), 0)
        one = resets == 1
        if one.any():
            # The one reset's index: the first drop after the window's first sample.
            running = np.cumsum(drops, dtype=np.int64)
            at = np.searchsorted(running, running[lo[one]] + 1, side="left")
            result[one] += v[at - 1]
        for i, k in zip(*np.nonzero(resets > 1), strict=True):
            # Several resets in one window: add them back in order, as the loop does.
            total = float(result[i, k])
            prev = float(v[lo[i, k]])
            for x in v[lo[i, k] + 1 : last_i[i, k] + 1].tolist():
                if x < prev:
                    total += prev
                prev = x
            result[i, k] = total
    first_t = t[lo]
    last_t = t[last_i]
    start = p.ends - p.range_ms
    to_start = (first_t - start) / 1000
    to_end = (p.ends - last_t) / 1000
    sampled = (last_t - first_t) / 1000
    average = sampled / (n - 1)
    threshold = average * 1.1
    to_start = np.where(to_start >= threshold, average / 2, to_start)
    if is_counter:
        to_zero = sampled * (first / result)
        use_zero = (result > 0) & (first >= 0) & (to_zero < to_start)
        to_start = np.where(use_zero, to_zero, to_start)
    to_end = np.where(to_end >= threshold, average / 2, to_end)
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= p.range_ms / 1000
    return result * factor, valid


#: Aggregations computed over whole step-columns here.
AGGREGATIONS = frozenset({"sum", "count", "min", "max", "avg", "group", "stddev", "stdvar"})


def aggregate(op: str, groups: dict[Labels, list[StepSeries]], n: int) -> list[StepSeries]:
    """``op`` of each group at every step, as the per-step code computes it.

    The members are folded in order, one whole row (all steps) at a time:
    ``sum`` is the same Kahan-Neumaier sum, step by step, and a step where a
    member has no sample leaves that step's running state alone.
    """
    out: list[StepSeries] = []
    with np.errstate(all="ignore"):
        for labels, members in groups.items():
            rows = [stepcols.column_of(s) for s in members]
            present = np.stack([row[1] for row in rows])
            raw = np.stack([row[0] for row in rows])
            seen = present.any(axis=0)
            if not seen.any():
                continue
            if op == "sum":
                # Members with a value at every step (the usual case) need no masking.
                every = all(s.column is not None and s.column[2] for s in members)
                result = _kahan_rows(raw, None if every else present)
                out.append(StepSeries.of_column(labels, result, seen))
                continue
            values = np.where(present, raw, 0.0)
            if op == "count":
                result = present.sum(axis=0).astype(np.float64)
            elif op == "group":
                result = np.ones(n, dtype=np.float64)
            elif op == "avg":
                result = windowsums.avg_rows(values, present)
            elif op in ("stddev", "stdvar"):
                result = windowsums.stdvar_rows(values, present)
                if op == "stddev":
                    result = np.sqrt(result)
            else:
                result = _extreme_rows(values, present, pick_max=op == "max")
            # The result stays an array: a binary operator or another
            # aggregation on top reads it as it is.
            out.append(StepSeries.of_column(labels, result, seen))
    return out


def _kahan_rows(values: Floats, present: Bools | None) -> Floats:
    """Kahan-Neumaier sum down the rows, per column, as ``sum_values`` adds.

    The running total after each member is a prefix sum, and ``cumsum`` adds
    strictly in order (unlike ``sum``, which adds pairwise): it gives every
    intermediate total the member-by-member loop gives. A missing member adds
    ``-0.0``, the one value that leaves every float (``+0.0`` included)
    unchanged (``present`` is ``None`` when no member misses a step). Each
    member's compensation term then follows from its total and the one
    before, and the compensation is itself an in-order sum of the terms from
    ``+0.0``. The loop zeroes the compensation when a total overflows, but
    from there on the total stays infinite or becomes NaN, and the
    compensation is not used. Columns are done a block at a time to bound
    memory.
    """
    rows, n = values.shape
    out = np.empty(n, dtype=np.float64)
    block = max(1, BATCH_CELLS // max(1, rows))
    for lo in range(0, n, block):
        v = values[:, lo : lo + block]
        if present is not None:
            has = present[:, lo : lo + block]
            v = np.where(has, v, -0.0)
        totals = np.cumsum(v, axis=0)
        before = np.empty_like(totals)
        before[0] = -0.0
        before[1:] = totals[:-1]
        terms = np.where(np.abs(before) >= np.abs(v), (before - totals) + v, (v - totals) + before)
        if present is not None:
            # A member adds to a total only once an earlier member started it.
            started = np.zeros_like(has)
            np.logical_or.accumulate(has[:-1], axis=0, out=started[1:])
            terms = np.where(has & started, terms, -0.0)
        terms[0] = 0.0  # the compensation starts at +0.0, as in the loop
        comp = np.cumsum(terms, axis=0)[-1]
        total = totals[-1]
        out[lo : lo + block] = np.where(np.isinf(total), total, total + comp)
    return out


def _extreme_rows(values: Floats, present: Bools, *, pick_max: bool) -> Floats:
    """min/max down the rows, as ``_min``/``_max`` fold a step's values in order.

    The fold keeps its first value until a smaller one (larger, for max)
    comes, and a NaN so far is replaced by whatever comes next: the result is
    the first non-NaN member equal to the smallest non-NaN value (which of
    ``0.0`` and ``-0.0`` comes first matters), or NaN when every member is NaN.
    """
    numbers = present & ~np.isnan(values)
    filler = -np.inf if pick_max else np.inf
    masked = np.where(numbers, values, filler)
    best = masked.max(axis=0) if pick_max else masked.min(axis=0)
    first = np.argmax(numbers & (masked == best[None, :]), axis=0)
    picked = values[first, np.arange(values.shape[1])]
    return np.where(numbers.any(axis=0), picked, np.nan)
