"""Order statistics over every window at once: ``quantile_over_time``, ``mad_over_time``.

A window's quantile needs its samples in order, so there is no running form
to share between overlapping windows. Here each window's samples are copied
into one row of a padded matrix (padding ``+Inf``, after the samples) and
every row is sorted with one stable ``np.sort``. The window loop sorts with
Python's stable ``sorted``, NaN first; the stable sort keeps ``-0.0`` and
``0.0`` in the same order, and NaN (which numpy sorts last) is read as if it
came first, so each row yields the same sequence and, by the same IEEE
operations, the same quantile bit for bit (:func:`.aggregations.quantile`).
Rows are sorted in chunks, so a long window (a day at a 15 s scrape) keeps
the temporaries to a few MiB.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from soulwatch.promql import interrupts
from soulwatch.promql.ndtypes import Floats, Ints

if TYPE_CHECKING:
    from soulwatch.promql.columnar import Packed


#: Padded cells sorted at once (8 bytes each): bounds each chunk's temporaries.
CHUNK_CELLS = 1 << 20


def _chunks(p: Packed) -> Iterator[tuple[slice, Floats, Ints]]:
    """``(cells, rows, count)``: the windows of a run of cells, one padded row each.

    ``cells`` indexes the flattened ``series x steps`` cells; each row holds
    the window's samples in time order, then ``+Inf`` up to the row width.
    """
    lo = p.lo.ravel()
    count = p.count.ravel()
    width = max(1, int(count.max(initial=1)))
    per_chunk = max(1, CHUNK_CELLS // width)
    offsets = np.arange(width, dtype=np.int64)[None, :]
    for first in range(0, lo.size, per_chunk):
        interrupts.check()
        stop = min(lo.size, first + per_chunk)
        cells = slice(first, stop)
        inside = offsets < count[cells, None]
        at = np.where(inside, lo[cells, None] + offsets, 0)
        yield cells, np.where(inside, p.values[at], np.inf), count[cells]


def quantile_rows(rows: Floats, count: Ints, q: Floats) -> Floats:
    """``quantile(q, row)`` of each row: rows hold ``count`` samples then ``+Inf`` padding."""
    ordered = np.sort(rows, axis=1, kind="stable")
    nans = np.isnan(rows).sum(axis=1)
    n = count.astype(np.float64)
    rank = q * (n - 1)
    floor = np.floor(rank)
    lower = np.maximum(0.0, floor)
    upper = np.minimum(n - 1, lower + 1)
    weight = rank - floor
    lower_v = _nan_first(ordered, nans, lower)
    upper_v = _nan_first(ordered, nans, upper)
    return lower_v * (1 - weight) + upper_v * weight


def _nan_first(ordered: Floats, nans: Ints, index: Floats) -> Floats:
    """The ``index``-th value of each row as if its NaNs were sorted before every number."""
    i = np.nan_to_num(index, nan=0.0).astype(np.int64)
    is_nan = i < nans
    # numpy puts NaN after the padding: the numbers start the sorted row.
    at = np.clip(i - nans, 0, ordered.shape[1] - 1)
    picked = np.take_along_axis(ordered, at[:, None], axis=1)[:, 0]
    return np.where(is_nan, np.nan, picked)


def bounded_quantile(q: Floats, value: Floats) -> Floats:
    """Prometheus's answer for ``q`` outside [0, 1] or NaN, else ``value``."""
    out = np.where(q < 0, -np.inf, np.where(q > 1, np.inf, value))
    return np.where(np.isnan(q), np.nan, out)


def quantile_over_time(p: Packed, q_per_step: Floats) -> Floats:
    """``quantile(q, window)`` of every window; ``q_per_step`` is one φ per step."""
    q_cells = np.broadcast_to(q_per_step[None, :], p.lo.shape).ravel()
    out = np.empty(p.lo.size, dtype=np.float64)
    for cells, rows, count in _chunks(p):
        q = q_cells[cells]
        # The interpolation is only read inside [0, 1]; elsewhere any finite q will do.
        inside = np.where((q >= 0) & (q <= 1), q, 0.0)
        out[cells] = bounded_quantile(q, quantile_rows(rows, count, inside))
    return out.reshape(p.lo.shape)


def mad_over_time(p: Packed) -> Floats:
    """Median absolute deviation from the median of every window (NaN if it holds one)."""
    out = np.empty(p.lo.size, dtype=np.float64)
    for cells, rows, count in _chunks(p):
        half = np.full(len(count), 0.5)
        median = quantile_rows(rows, count, half)
        inside = np.arange(rows.shape[1])[None, :] < count[:, None]
        # |x - median| has no signed zero, so the order of equal deviations cannot show.
        deviations = np.where(inside, np.abs(rows - median[:, None]), np.inf)
        mad = quantile_rows(deviations, count, half)
        out[cells] = np.where(np.isnan(rows).any(axis=1), np.nan, mad)
    return out.reshape(p.lo.shape)
