"""Instant-vector math and date functions: abs, ceil, round, clamp, exp, ln, trig, year..."""

from __future__ import annotations

import calendar
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from soulwatch.promql.ast import Call
from soulwatch.promql.funcargs import Handler, map_values, scalar_arg, vector_arg
from soulwatch.promql.stepvec import StepSeries, StepValue
from soulwatch.tsdb.model import Labels

try:
    from soulwatch.promql import colmath
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    colmath = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator


def _guard(
    fn: Callable[[float], float], on_error: Callable[[float], float]
) -> Callable[[float], float]:
    def call(x: float) -> float:
        try:
            return fn(x)
        except (ValueError, OverflowError):
            return on_error(x)

    return call


def _nan(x: float) -> float:
    return math.nan


def _log_error(x: float) -> float:
    return -math.inf if x == 0 else math.nan


def _overflow_sign(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return math.copysign(math.inf, x)


def _atanh_error(x: float) -> float:
    if x == 1:
        return math.inf
    if x == -1:
        return -math.inf
    return math.nan


def _integral(fn: Callable[[float], int]) -> Callable[[float], float]:
    def call(x: float) -> float:
        if not math.isfinite(x):
            return x
        return math.copysign(float(fn(x)), x) if fn(x) == 0 else float(fn(x))

    return call


def _sgn(x: float) -> float:
    if x > 0:
        return 1.0
    if x < 0:
        return -1.0
    return x  # 0 or NaN


MATH: dict[str, Callable[[float], float]] = {
    "abs": math.fabs,
    "ceil": _integral(math.ceil),
    "floor": _integral(math.floor),
    "exp": _guard(math.exp, lambda x: math.inf),
    "ln": _guard(math.log, _log_error),
    "log2": _guard(math.log2, _log_error),
    "log10": _guard(math.log10, _log_error),
    "sqrt": _guard(math.sqrt, _nan),
    "sgn": _sgn,
    "sin": _guard(math.sin, _nan),
    "cos": _guard(math.cos, _nan),
    "tan": _guard(math.tan, _nan),
    "asin": _guard(math.asin, _nan),
    "acos": _guard(math.acos, _nan),
    "atan": math.atan,
    "sinh": _guard(math.sinh, _overflow_sign),
    "cosh": _guard(math.cosh, lambda x: math.inf),
    "tanh": math.tanh,
    "asinh": math.asinh,
    "acosh": _guard(math.acosh, _nan),
    "atanh": _guard(math.atanh, _atanh_error),
    "deg": lambda x: x * 180 / math.pi,
    "rad": lambda x: x * math.pi / 180,
}


def _on_columns(ev: Evaluator, vec: list[StepSeries], ts: list[int]) -> bool:
    """Whether to compute over whole step-columns (:mod:`.colmath`): a range query's."""
    return ev.columnar and colmath is not None and len(ts) > 1 and bool(vec)


def _math_handler(name: str, fn: Callable[[float], float]) -> Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        vec = vector_arg(ev, node, 0, ts)
        if _on_columns(ev, vec, ts) and colmath.supported(name):
            return colmath.apply(name, fn, vec, len(ts))
        return map_values(vec, fn)

    return handler


def _round(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    nearest = scalar_arg(ev, node, 1, ts) if len(node.args) > 1 else [1.0] * len(ts)
    if _on_columns(ev, vec, ts):
        return colmath.round_to(vec, nearest)
    out = []
    for s in vec:
        vals: list[float | None] = []
        for v, to in zip(s.vals, nearest, strict=True):
            if v is None:
                vals.append(None)
                continue
            inverse = 1.0 / to if to != 0 else math.copysign(math.inf, to)
            x = v * inverse + 0.5
            vals.append(math.floor(x) / inverse if math.isfinite(x) else x / inverse)
        out.append(StepSeries(s.labels, vals, True))
    return out


def _clamp_between(
    vec: list[StepSeries], lows: list[float], highs: list[float]
) -> list[StepSeries]:
    out = []
    for s in vec:
        vals: list[float | None] = []
        for v, lo, hi in zip(s.vals, lows, highs, strict=True):
            if v is None or hi < lo:
                vals.append(None)
            elif math.isnan(v) or math.isnan(lo) or math.isnan(hi):
                vals.append(math.nan)
            else:
                vals.append(max(lo, min(hi, v)))
        if any(v is not None for v in vals):
            out.append(StepSeries(s.labels, vals, True))
    return out


def _clamped(
    ev: Evaluator, vec: list[StepSeries], ts: list[int], lows: list[float], highs: list[float]
) -> StepValue:
    if _on_columns(ev, vec, ts):
        return colmath.clamp(vec, lows, highs)
    return _clamp_between(vec, lows, highs)


def _clamp(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    return _clamped(ev, vec, ts, scalar_arg(ev, node, 1, ts), scalar_arg(ev, node, 2, ts))


def _clamp_min(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    return _clamped(ev, vec, ts, scalar_arg(ev, node, 1, ts), [math.inf] * len(ts))


def _clamp_max(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    return _clamped(ev, vec, ts, [-math.inf] * len(ts), scalar_arg(ev, node, 1, ts))


# -- dates -------------------------------------------------------------------------


def _date_handler(part: Callable[[datetime], int]) -> Handler:
    def fn(v: float) -> float:
        if not math.isfinite(v):
            return math.nan
        try:
            return float(part(datetime.fromtimestamp(int(v), tz=UTC)))
        except (OverflowError, OSError, ValueError):
            return math.nan

    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        if not node.args:
            return [StepSeries(Labels(), [fn(t / 1000) for t in ts])]
        return map_values(vector_arg(ev, node, 0, ts), fn)

    return handler


DATES: dict[str, Callable[[datetime], int]] = {
    "day_of_month": lambda d: d.day,
    "day_of_week": lambda d: (d.weekday() + 1) % 7,
    "day_of_year": lambda d: d.timetuple().tm_yday,
    "days_in_month": lambda d: calendar.monthrange(d.year, d.month)[1],
    "hour": lambda d: d.hour,
    "minute": lambda d: d.minute,
    "month": lambda d: d.month,
    "year": lambda d: d.year,
}


HANDLERS: dict[str, Handler] = {
    **{name: _math_handler(name, fn) for name, fn in MATH.items()},
    **{name: _date_handler(part) for name, part in DATES.items()},
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
}
