"""Step series as numpy arrays: the column of any series, and results built from arrays.

A series the array path computed carries its column (see
:class:`~.stepvec.StepSeries`); one from the step-by-step code has only its
list of values, converted here once (``None`` becomes a cleared mask bit).
Only imported where numpy is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from soulwatch.promql.stepvec import StepSeries

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Floats = NDArray[np.float64]
    Bools = NDArray[np.bool_]
else:
    Floats = Bools = Any


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
