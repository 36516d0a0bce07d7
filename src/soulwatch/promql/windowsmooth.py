"""``double_exponential_smoothing`` over every window at once.

The smoothing is a recurrence along the window's samples (each level and
trend depends on the previous ones), so it cannot come from a cumulative
sum. As the compensated sums of :mod:`.windowsums`, the windows are walked
by position: step ``k`` advances the recurrence by the ``k``-th sample of
every window of every series with whole-array operations, the same IEEE
operations in the same order as the window loop (:mod:`.rangefuncs`), so
the answers are the same bit for bit. The factors may differ from step to
step (``scalar(...)`` arguments): they are one value per step column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.ndtypes import Bools, Floats
from soulwatch.promql.windowsums import positions

if TYPE_CHECKING:
    from soulwatch.promql.columnar import Packed


def _check_factors(p: Packed, sf: Floats, tf: Floats) -> None:
    """Fail as the window loop does: at the first window with a sample and a bad factor.

    The loop goes series by series, step by step, and only looks at a
    window's factors when the window holds a sample.
    """
    bad = ~((sf > 0) & (sf < 1)) | ~((tf > 0) & (tf < 1))
    if not bad.any():
        return
    hit = (p.count > 0) & bad[None, :]
    rows = np.flatnonzero(hit.any(axis=1))
    if not rows.size:
        return
    step = int(hit[rows[0]].argmax())
    smoothing, trend = float(sf[step]), float(tf[step])
    if not 0 < smoothing < 1:
        raise EvaluationError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {smoothing:f}")
    raise EvaluationError(f"invalid trend factor. Expected: 0 < tf < 1, got: {trend:f}")


def double_exponential_smoothing(
    p: Packed, params: Sequence[Sequence[float]]
) -> tuple[Floats, Bools]:
    """The smoothed value of every window (two samples at least), and where there is one.

    ``params`` holds the smoothing and the trend factor, one value per step.
    """
    steps = p.lo.shape[1]
    sf = np.asarray(params[0][:steps], dtype=np.float64)
    tf = np.asarray(params[1][:steps], dtype=np.float64)
    _check_factors(p, sf, tf)
    valid = p.count >= 2
    sf = np.broadcast_to(sf[None, :], p.lo.shape)
    tf = np.broadcast_to(tf[None, :], p.lo.shape)
    keep_sf, keep_tf = 1 - sf, 1 - tf
    s0 = np.zeros(p.lo.shape)
    s1 = p.values[np.where(p.count > 0, p.lo, 0)]
    b = p.values[np.where(valid, p.lo + 1, 0)] - s1
    for k, v, active in positions(p, 1):
        x = sf * v
        if k > 1:
            b = np.where(active, tf * (s1 - s0) + keep_tf * b, b)
        y = keep_sf * (s1 + b)
        s0, s1 = np.where(active, s1, s0), np.where(active, x + y, s1)
    return s1, valid
