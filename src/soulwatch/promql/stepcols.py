"""Step series as numpy arrays: the column of any series, and results built from arrays.

A series the array path computed carries its column (see
:class:`~.stepvec.StepSeries`); one from the step-by-step code has only its
list of values, converted here once (``None`` becomes a cleared mask bit).
Only imported where numpy is installed.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator, Sequence
from typing import Any, cast

import numpy as np

from soulwatch.promql.ndtypes import Bools, Floats
from soulwatch.promql.stepvec import Column, StepSeries
from soulwatch.tsdb.model import STALE_NAN_BITS, ArraySeries, Series


def column_of(s: StepSeries) -> tuple[Floats, Bools]:
    """``s``'s values and validity mask, as arrays (no copy when it has a column)."""
    if s.column is not None:
        return s.column[0], s.column[1]
    return list_column(s.vals)


def list_column(vals: Sequence[float | None]) -> tuple[Floats, Bools]:
    """A list of values or ``None`` as (values, validity).

    numpy turns ``None`` into NaN; only the NaN cells are then looked at
    again, to tell a missing step from a NaN sample.
    """
    values = np.array(vals, dtype=np.float64)
    valid = np.ones(len(values), dtype=np.bool_)
    for index in np.flatnonzero(np.isnan(values)).tolist():
        valid[index] = vals[index] is not None
    return values, valid


def scalar_column(vals: Sequence[float]) -> Floats:
    """A scalar's value at every step, as one array."""
    return np.asarray(vals, dtype=np.float64)


#: Cells (series x steps) per batch of :func:`lookback_columns`: bounded temporaries.
BATCH_CELLS = 1 << 17
_STALE_BITS = np.uint64(STALE_NAN_BITS)


def _flat(columns: Sequence[Sequence[Any]], typecode: str, dtype: Any) -> Any:
    """Every column end to end; ``array(typecode)`` columns are joined as bytes."""
    kinds = {c.typecode if type(c) is array else getattr(c, "format", "") for c in columns}
    if kinds <= {typecode}:  # arrays, or the TSDB head's memoryviews
        return np.frombuffer(b"".join(columns), dtype=dtype)  # type: ignore[arg-type]
    return np.concatenate([np.asarray(c, dtype=dtype) for c in columns])


def lookback_columns(
    series: Sequence[Series | ArraySeries],
    times: Sequence[int],
    lookback_ms: int,
    *,
    timestamps: bool = False,
) -> Iterator[tuple[int, Column]]:
    """An instant selector's value at each of ``times``: ``(index in series, column)``.

    The value at ``t`` is the last sample at or before ``t`` if it is newer
    than ``t - lookback_ms`` and not a staleness marker, as the step loop of
    the engine finds it; ``timestamps`` gives that sample's time in seconds
    instead. A batch of series is flattened into one sorted key per sample
    (series, time), so one ``searchsorted`` finds every step of every series.
    Series with no value at any step are not yielded.
    """
    at = np.asarray(times, dtype=np.int64)
    oldest = at - lookback_ms
    per_batch = max(1, BATCH_CELLS // max(1, len(at)))
    for first in range(0, len(series), per_batch):
        batch = series[first : first + per_batch]
        lengths = np.fromiter((len(s.timestamps) for s in batch), dtype=np.int64, count=len(batch))
        if not lengths.any():
            continue
        ts = _flat([s.timestamps for s in batch], "q", np.int64)
        vs = _flat([s.values for s in batch], "d", np.float64)
        starts = np.zeros(len(batch), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        base = min(int(ts.min()), int(at.min()))
        width = max(int(ts.max()), int(at.max())) - base + 1
        rows = np.arange(len(batch), dtype=np.int64) * width
        keys = np.repeat(rows, lengths) + (ts - base)
        last = np.searchsorted(keys, rows[:, None] + (at - base)[None, :], side="right") - 1
        # The last sample at or before the step must be this series' own.
        valid = last >= starts[:, None]
        last = np.where(valid, last, 0)
        valid &= ts[last] > oldest[None, :]
        values = vs[last]
        valid &= values.view(np.uint64) != _STALE_BITS
        if timestamps:
            values = ts[last] / 1000.0
        full = cast("list[bool]", valid.all(axis=1).tolist())
        for index in np.flatnonzero(valid.any(axis=1)).tolist():
            yield first + index, (values[index], valid[index], full[index])
