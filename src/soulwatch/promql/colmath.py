"""The math functions over whole step-columns: abs, ceil, sqrt, ln, sin, round, clamp...

A range query's instant vector is stacked into one ``series x steps``
matrix and each function is applied to every cell at once; each row then
stays an array (the series' column), so a function over the array path's
output (``abs(deriv(...))``) never builds Python lists.

The values are the per-step code's (:mod:`.mathfuncs`) bit for bit.
``abs``, ``ceil``, ``floor``, ``sqrt``, ``sgn``, ``deg``, ``rad``, ``round``
and ``clamp*`` are exactly rounded IEEE operations, the same in numpy as in
Python. The transcendental functions (``exp``, ``ln``, the trigonometric
ones...) are not: numpy may use its own SIMD approximations, which can
differ from the C library's in the last bit. Those keep the C library's
function (Python's ``math``), mapped over the column's values in one C-level
pass; only the cells outside the function's plain domain (an overflow, a
logarithm of zero, NaN) go through the per-step code's guarded form. Only
imported where numpy is installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from soulwatch.promql import stepcols
from soulwatch.promql.ndtypes import Bools, Floats
from soulwatch.promql.stepvec import StepSeries

#: Cells (series x steps) per batch: bounds the temporaries to a few MiB each.
BATCH_CELLS = 1 << 17

_Domain = Callable[[Floats], Bools]


def _exact(name: str, x: Floats) -> Floats | None:
    """``name`` of every cell when numpy computes it exactly as Python does, else ``None``."""
    if name == "abs":
        return np.abs(x)
    if name in ("ceil", "floor"):
        # Python's form keeps the sign of a zero result (``ceil(-0.5)`` is
        # ``-0.0``) and passes NaN and infinities through: so does numpy's.
        return np.ceil(x) if name == "ceil" else np.floor(x)
    if name == "sqrt":
        return np.sqrt(x)  # correctly rounded in both; NaN below zero
    if name == "sgn":
        return np.where(x > 0, 1.0, np.where(x < 0, -1.0, x))
    if name == "deg":
        return x * 180 / math.pi
    if name == "rad":
        return x * math.pi / 180
    return None


def _finite(x: Floats) -> Bools:
    return np.isfinite(x)


def _unit(x: Floats) -> Bools:
    return np.abs(x) <= 1


#: Where each C-library function neither raises nor needs the guarded form's
#: answer (NaN is left to the guarded form too: comparisons with it are false).
_DOMAINS: dict[str, tuple[Callable[[float], float], _Domain]] = {
    "exp": (math.exp, lambda x: x <= 700),
    "ln": (math.log, lambda x: x > 0),
    "log2": (math.log2, lambda x: x > 0),
    "log10": (math.log10, lambda x: x > 0),
    "sin": (math.sin, _finite),
    "cos": (math.cos, _finite),
    "tan": (math.tan, _finite),
    "asin": (math.asin, _unit),
    "acos": (math.acos, _unit),
    "atan": (math.atan, lambda x: ~np.isnan(x)),
    "sinh": (math.sinh, lambda x: np.abs(x) <= 700),
    "cosh": (math.cosh, lambda x: np.abs(x) <= 700),
    "tanh": (math.tanh, lambda x: ~np.isnan(x)),
    "asinh": (math.asinh, lambda x: ~np.isnan(x)),
    "acosh": (math.acosh, lambda x: x >= 1),
    "atanh": (math.atanh, lambda x: np.abs(x) < 1),
}


def _libm(name: str, guarded: Callable[[float], float], x: Floats) -> Floats:
    """The C library's ``name`` of every cell; off its plain domain, the guarded form."""
    raw, domain = _DOMAINS[name]
    flat = x.ravel()
    inside = domain(flat)
    # Cells off the domain are computed again below: meanwhile a value inside it.
    filler = 1.5 if name == "acosh" else 0.5
    out = np.fromiter(
        map(raw, np.where(inside, flat, filler).tolist()), dtype=np.float64, count=flat.size
    )
    for index in np.flatnonzero(~inside).tolist():
        out[index] = guarded(float(flat[index]))
    return out.reshape(x.shape)


def supported(name: str) -> bool:
    """Whether :func:`apply` computes ``name``."""
    return name in _DOMAINS or _exact(name, np.zeros(0)) is not None


def _batches(
    vec: Sequence[StepSeries], n: int
) -> Iterator[tuple[Sequence[StepSeries], Floats, list[Bools]]]:
    """Runs of ``vec``: the series, their values as one ``series x steps`` matrix, their masks."""
    per_batch = max(1, BATCH_CELLS // max(1, n))
    for first in range(0, len(vec), per_batch):
        batch = vec[first : first + per_batch]
        columns = [stepcols.column_of(s) for s in batch]
        yield batch, np.stack([c[0] for c in columns]), [c[1] for c in columns]


def _rows(batch: Sequence[StepSeries], values: Floats, valid: list[Bools]) -> Iterator[StepSeries]:
    """Each series of ``batch`` with its row of ``values``, its validity unchanged."""
    for s, row, mask in zip(batch, values, valid, strict=True):
        full = s.column[2] if s.column is not None else bool(mask.all())
        yield StepSeries(s.labels, None, True, (row, mask, full))


def apply(
    name: str, guarded: Callable[[float], float], vec: Sequence[StepSeries], n: int
) -> list[StepSeries]:
    """``name`` (whose per-step form is ``guarded``) of every series at ``n`` steps."""
    out: list[StepSeries] = []
    with np.errstate(all="ignore"):
        for batch, values, valid in _batches(vec, n):
            result = _exact(name, values)
            if result is None:
                result = _libm(name, guarded, values)
            out.extend(_rows(batch, result, valid))
    return out


def round_to(vec: Sequence[StepSeries], nearest: Sequence[float]) -> list[StepSeries]:
    """``round(v, to_nearest)`` of every series, ``nearest`` one value per step."""
    to = np.asarray(nearest, dtype=np.float64)
    out: list[StepSeries] = []
    with np.errstate(all="ignore"):
        inverse = np.where(to != 0, 1.0 / to, np.copysign(np.inf, to))
        for batch, values, valid in _batches(vec, len(to)):
            x = values * inverse + 0.5
            # ``+ 0.0``: Python's ``math.floor`` is an int, which has no -0.0.
            result = np.where(np.isfinite(x), (np.floor(x) + 0.0) / inverse, x / inverse)
            out.extend(_rows(batch, result, valid))
    return out


def clamp(
    vec: Sequence[StepSeries], lows: Sequence[float], highs: Sequence[float]
) -> list[StepSeries]:
    """``clamp``: each value between the step's bounds; no value where ``high < low``."""
    lo = np.asarray(lows, dtype=np.float64)
    hi = np.asarray(highs, dtype=np.float64)
    out: list[StepSeries] = []
    with np.errstate(all="ignore"):
        for batch, values, valid in _batches(vec, len(lo)):
            # min(hi, v) then max(lo, .) as Python picks: the first argument on a tie.
            lower = np.where(values < hi, values, hi)
            result = np.where(lower > lo, lower, lo)
            result = np.where(np.isnan(values) | np.isnan(lo) | np.isnan(hi), np.nan, result)
            keep = np.stack(valid) & ~(hi < lo)
            for index in np.flatnonzero(keep.any(axis=1)).tolist():
                out.append(
                    StepSeries.of_column(batch[index].labels, result[index], keep[index], True)
                )
    return out
