"""Classic-histogram functions over step-columns: every step of a histogram at once.

The per-step code (:func:`.histograms.bucket_quantile`) sorts a histogram's
present buckets, merges equal bounds, forces the counts up to monotonic and
walks them to the rank, once per step. Here a histogram is a matrix of
bucket rows (one per series) by steps; the bounds of a series do not change
from step to step, so the sort is done once, and every walk over the buckets
is a loop over the few distinct bounds with all the steps as one array.
Histograms with the same bounds are laid end to end along the step axis and
walked together. A bucket with no sample at a step is absent at that step,
as in the per-step code: each walk skips it there and carries its state past
it. Every arithmetic operation is the per-step code's own, in the same
order, so the results are the same floats bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from soulwatch.promql import histograms
from soulwatch.promql.histograms import MIN_NORMAL, SMALL_DELTA_TOLERANCE
from soulwatch.promql.ndtypes import Bools, Floats
from soulwatch.promql.stepvec import StepSeries
from soulwatch.tsdb.model import Labels

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy ships with the package
    np = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator


#: Fewer bucket samples (series x steps) than this are computed step by step:
#: below it the per-step code is faster (a batch costs about 0.3 ms to set up).
MIN_CELLS = 1000

#: Cells (steps x histograms) of one batch: bounds each temporary row to 512 KiB.
BATCH_CELLS = 1 << 16

Members = list[tuple[float, StepSeries]]
#: Computes a batch: (bounds, values, present, histograms in the batch) -> (result, forced).
Compute = Callable[[list[float], Floats, Bools, int], tuple[Floats, Bools | None]]


def quantile_over_buckets(
    ev: Evaluator, qs: list[float], vec: list[StepSeries], pos: int
) -> list[StepSeries]:
    """``histogram_quantile`` over classic bucket series, all steps of a histogram at once."""
    if not _pays(ev, len(qs), len(vec)):
        return histograms.quantile_over_buckets(ev, qs, vec, pos)
    q = np.asarray(qs, dtype=np.float64)

    def compute(bounds: list[float], values: Floats, present: Bools, count: int) -> Any:
        return quantile(np.tile(q, count), prepare(bounds, values, present))

    return _over_groups(ev, vec, pos, len(qs), compute)


def fraction_over_buckets(
    ev: Evaluator, lower: list[float], upper: list[float], vec: list[StepSeries], pos: int
) -> list[StepSeries]:
    """``histogram_fraction`` over classic bucket series, all steps of a histogram at once."""
    if not _pays(ev, len(lower), len(vec)):
        return histograms.fraction_over_buckets(ev, lower, upper, vec, pos)
    low = np.asarray(lower, dtype=np.float64)
    up = np.asarray(upper, dtype=np.float64)

    def compute(bounds: list[float], values: Floats, present: Bools, count: int) -> Any:
        prepared = prepare(bounds, values, present)
        return fraction(np.tile(low, count), np.tile(up, count), prepared), None

    return _over_groups(ev, vec, pos, len(lower), compute)


def _pays(ev: Evaluator, steps: int, series: int) -> bool:
    """Whether to take the array path: numpy, the engine's array path on, enough samples.

    An instant query (one step) always goes step by step.
    """
    return np is not None and ev.columnar and steps > 1 and steps * series >= MIN_CELLS


def _over_groups(
    ev: Evaluator, vec: list[StepSeries], pos: int, n: int, compute: Compute
) -> list[StepSeries]:
    """``compute`` for every histogram of ``vec``, histograms with the same bounds together.

    Histograms whose sorted bounds agree are laid end to end along the step
    axis, so one pass over the buckets computes all of them: the walks are
    per step and never look across steps.
    """
    groups = histograms.bucket_groups(ev, vec, pos)
    # Sorted stably by bound, as the per-step code sorts: equal bounds keep their order.
    ordered = {labels: sorted(members, key=_bound) for labels, members in groups.items()}
    kinds: dict[tuple[str, ...], list[Labels]] = {}
    for labels, members in ordered.items():
        # float.hex tells -0.0 from 0.0: a merged bucket keeps its first series' bound.
        kinds.setdefault(tuple(b.hex() for b, _ in members), []).append(labels)
    done: dict[Labels, tuple[StepSeries | None, bool]] = {}
    per_batch = max(1, BATCH_CELLS // n)
    with np.errstate(all="ignore"):
        for same in kinds.values():
            for first in range(0, len(same), per_batch):
                ev.check_time()
                batch = same[first : first + per_batch]
                rows = [ordered[labels] for labels in batch]
                values, present = _rows(rows, n)
                result, forced = compute([b for b, _ in rows[0]], values, present, len(batch))
                seen = present.any(axis=0).reshape(len(batch), n)
                result = result.reshape(len(batch), n)
                hits = [False] * len(batch)
                if forced is not None:
                    hits = cast("list[bool]", (forced.reshape(seen.shape) & seen).any(1).tolist())
                for labels, series, hit in zip(
                    batch, _series(batch, result, seen), hits, strict=True
                ):
                    done[labels] = (series, hit)
    out = []
    # Results and infos in the order of the histograms, as the per-step code gives them.
    for labels, members in groups.items():
        series, forced_any = done[labels]
        if forced_any:
            histograms.monotonicity_info(ev, members, pos)
        if series is not None:
            out.append(series)
    return out


def _bound(member: tuple[float, StepSeries]) -> float:
    return member[0]


def _rows(groups: list[Members], n: int) -> tuple[Floats, Bools]:
    """Each bucket's row of every histogram end to end: bucket rows by (histogram, step)."""
    members = [s for group in groups for _, s in group]
    shape = (len(groups), len(groups[0]), n)
    columns = [s.column for s in members if s.column is not None]
    if len(columns) == len(members):
        # Rows an earlier array computation kept: no conversion from Python floats.
        values = np.stack([c[0] for c in columns])
        present = np.stack([c[1] for c in columns])
    else:
        cells = np.array([s.vals for s in members], dtype=object).reshape(len(members), n)
        present = cells != None  # noqa: E711 - elementwise test for missing samples
        values = np.where(present, cells, 0.0).astype(np.float64)
    return _end_to_end(values, shape), _end_to_end(present, shape)


def _end_to_end(rows: Any, shape: tuple[int, int, int]) -> Any:
    """(histogram x bucket) rows of steps as bucket rows of (histogram, step)."""
    groups, buckets, n = shape
    return rows.reshape(shape).transpose(1, 0, 2).reshape(buckets, groups * n)


def _series(batch: list[Labels], result: Floats, seen: Bools) -> list[StepSeries | None]:
    """A batch's result rows as series (``None``: no value at any step).

    ``vals`` for every reader, ``column`` for readers of step-columns.
    """
    cells = result.astype(object)
    cells[~seen] = None
    rows: list[list[float | None]] = cells.tolist()
    full = cast("list[bool]", seen.all(axis=1).tolist())
    some = cast("list[bool]", seen.any(axis=1).tolist())
    return [
        StepSeries(labels, rows[i], True, column=(result[i], seen[i], full[i])) if some[i] else None
        for i, labels in enumerate(batch)
    ]


@dataclass(slots=True)
class Buckets:
    """Buckets after the merge and the monotonicity fix, one row per distinct bound.

    ``bounds[k]`` is the ``k``-th smallest distinct bound at every step (the
    first present series' own float, so a ``-0`` bucket keeps its sign),
    ``counts[k]`` its merged and fixed count, ``present[k]`` whether any
    series of that bound has a sample at the step. ``usable`` is where the
    per-step code gets past its checks (a sample in the ``+Inf`` bucket),
    ``forced`` where it had to raise a count.
    """

    bounds: list[Floats]
    counts: list[Floats]
    present: list[Bools]
    usable: Bools
    forced: Bools


def _almost_equal(a: Floats, b: Floats) -> Bools:
    """:func:`.histograms._almost_equal` elementwise."""
    abs_sum = np.abs(a) + np.abs(b)
    diff = np.abs(a - b)
    tiny = (a == 0) | (b == 0) | (abs_sum < MIN_NORMAL)
    near = np.where(
        tiny,
        diff < SMALL_DELTA_TOLERANCE * MIN_NORMAL,
        diff / np.minimum(abs_sum, np.finfo(np.float64).max) < SMALL_DELTA_TOLERANCE,
    )
    return (a == b) | near  # type: ignore[no-any-return]


def prepare(bounds: list[float], values: Floats, present: Bools) -> Buckets:
    """Sort, merge and fix buckets at every step (``_prepare``, per step).

    ``bounds`` holds each row's bound (no NaN); ``values`` and ``present``
    are rows by steps (or by histogram and step, end to end).
    """
    n = values.shape[1]
    # The per-step code sorts stably by bound: equal bounds merge in row order.
    order = sorted(range(len(bounds)), key=bounds.__getitem__)
    merged_bounds: list[Floats] = []
    counts: list[Floats] = []
    presence: list[Bools] = []
    last_bound: float | None = None
    for row in order:
        bound = bounds[row]
        has = present[row]
        if last_bound is not None and bound == last_bound:
            # The first present series gives the sum its start and the bucket its bound.
            first = ~presence[-1]
            counts[-1] = np.where(
                has, np.where(first, values[row], counts[-1] + values[row]), counts[-1]
            )
            merged_bounds[-1] = np.where(has & first, bound, merged_bounds[-1])
            presence[-1] = presence[-1] | has
            continue
        last_bound = bound
        counts.append(np.where(has, values[row], 0.0))
        merged_bounds.append(np.full(n, bound))
        presence.append(has)
    # The largest present bound must be +Inf: the +Inf bucket itself must be there.
    usable = presence[-1] & (merged_bounds[-1] == np.inf)
    started = np.zeros(n, dtype=np.bool_)
    forced = np.zeros(n, dtype=np.bool_)
    prev = np.zeros(n, dtype=np.float64)
    for k, has in enumerate(presence):
        curr = counts[k]
        later = has & started
        same = curr == prev
        near = ~same & _almost_equal(prev, curr)
        lower = ~same & ~near & (curr < prev)
        raise_to_prev = later & (near | lower)
        forced |= later & lower
        counts[k] = np.where(raise_to_prev, prev, curr)
        # The first present bucket starts the walk; a count that goes up moves it on.
        move = has & (~started | (~same & ~near & ~lower))
        prev = np.where(move, curr, prev)
        started |= has
    return Buckets(merged_bounds, counts, presence, usable, forced & usable)


def quantile(qs: Floats, b: Buckets) -> tuple[Floats, Bools]:
    """:func:`.histograms.bucket_quantile` at every step; and where monotonicity was forced.

    Steps with no bucket at all are not looked at (the caller leaves them empty).
    """
    n = len(qs)
    last = len(b.counts) - 1
    observations = b.counts[last]
    rank = qs * observations
    # The rank's bucket: the first present one, below +Inf, whose count reaches the rank.
    found = np.zeros(n, dtype=np.bool_)
    started = np.zeros(n, dtype=np.bool_)
    result = np.full(n, np.nan)
    prev_bound = np.zeros(n, dtype=np.float64)
    prev_count = np.zeros(n, dtype=np.float64)
    present_count = b.present[last].astype(np.int64)
    for k in range(last):
        has = b.present[k]
        present_count += has
        bound = b.bounds[k]
        count = b.counts[k]
        hit = has & ~found & (count >= rank)
        if hit.any():
            # The lowest bucket holds everything from 0 up, or is a bound of 0 or below itself.
            start = np.where(started, prev_bound, 0.0)
            in_bucket = np.where(started, count - prev_count, count)
            above = np.where(started, rank - prev_count, rank)
            value = start + (bound - start) * (above / in_bucket)
            value = np.where(~started & (bound <= 0), bound, value)
            result = np.where(hit, value, result)
            found |= hit
        moved = has & ~found
        prev_bound = np.where(moved, bound, prev_bound)
        prev_count = np.where(moved, count, prev_count)
        started |= has
    # No bucket below +Inf reaches the rank: the largest finite bound present.
    result = np.where(found, result, prev_bound)
    result = np.where(b.usable & (present_count >= 2) & (observations != 0), result, np.nan)
    result = np.where(qs > 1, np.inf, result)
    result = np.where(qs < 0, -np.inf, result)
    result = np.where(np.isnan(qs), np.nan, result)
    in_range = (qs >= 0) & (qs <= 1)
    return result, b.forced & in_range


def _interpolate(v: Floats, rank: Floats, low: Floats, up: Floats, count: Floats) -> Floats:
    """:func:`.histograms._interpolate` elementwise."""
    linear = rank + (count - rank) * (v - low) / (up - low)
    open_ended = np.where(np.isinf(up), rank, count)
    return np.where(np.isinf(low) | np.isinf(up), open_ended, linear)


def fraction(lower: Floats, upper: Floats, b: Buckets) -> Floats:
    """:func:`.histograms.bucket_fraction` at every step."""
    n = len(lower)
    total = b.counts[-1]
    # Row 0 follows the lower end, row 1 the upper end, through the same walk.
    targets = np.stack([lower, upper])
    ranks = np.zeros((2, n), dtype=np.float64)
    found = np.zeros((2, n), dtype=np.bool_)
    rank = np.zeros(n, dtype=np.float64)
    started = np.zeros(n, dtype=np.bool_)
    prev_bound = np.zeros(n, dtype=np.float64)
    for bound, count, has in zip(b.bounds, b.counts, b.present, strict=True):
        # Below the lowest bucket: 0 for a positive bound, else -Inf.
        low = np.where(started, prev_bound, np.where(bound > 0, 0.0, -np.inf))
        at_low = has & ~found & (low >= targets)
        ranks = np.where(at_low, rank, ranks)
        found |= at_low
        inside = has & ~found & (low < targets) & (targets < bound)
        if inside.any():
            ranks = np.where(inside, _interpolate(targets, rank, low, bound, count), ranks)
            found |= inside
        rank = np.where(has, count, rank)
        prev_bound = np.where(has, bound, prev_bound)
        started |= has
    ranks = np.where(~found | (ranks > total), total, ranks)
    result = (ranks[1] - ranks[0]) / total
    result = np.where(lower >= upper, 0.0, result)
    bad = ~b.usable | (total == 0) | np.isnan(lower) | np.isnan(upper)
    return np.where(bad, np.nan, result)
