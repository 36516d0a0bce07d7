"""Function calls: dispatch, instant-vector math, dates, labels, sorting, absent.

Range-vector functions live in :mod:`.rangefuncs` and classic-histogram
functions in :mod:`.histograms`; this module evaluates their arguments and
walks the windows.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
from bisect import bisect_right
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from soulwatch.exceptions import EvaluationError, QueryError
from soulwatch.promql import histograms
from soulwatch.promql.aggregations import format_g, go_quote, valid_label_name
from soulwatch.promql.ast import Call, Expr, MatrixSelector, ParenExpr, SubqueryExpr, VectorSelector
from soulwatch.promql.rangefuncs import RANGE_FUNCTIONS, RangeFunction, Window
from soulwatch.promql.stepvec import (
    RangeSeries,
    ScalarSteps,
    StepSeries,
    StepValue,
    StringValue,
    merge_same_labels,
)
from soulwatch.tsdb.model import METRIC_NAME, Labels, MatchType

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator

COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def _unwrap(node: Expr) -> Expr:
    while isinstance(node, ParenExpr):
        node = node.expr
    return node


def evaluate(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    """Evaluate a function call at every step."""
    name = node.func
    rf = RANGE_FUNCTIONS.get(name)
    if rf is not None:
        return _range_call(ev, node, rf, ts)
    if name == "absent_over_time":
        return _absent_over_time(ev, node, ts)
    if name == "timestamp":
        return _timestamp(ev, node, ts)
    handler = _HANDLERS.get(name)
    if handler is None:
        raise QueryError(f"unknown function with name {name!r}")
    return handler(ev, node, ts)


def _pos(node: Expr) -> int:
    return int(getattr(node, "pos", 0))


# -- range-vector functions ------------------------------------------------------


def _range_input(
    ev: Evaluator, arg: Expr, ts: list[int]
) -> tuple[list[RangeSeries], list[int], int, bool]:
    """Series, the window end per step, the range, and whether every step is the same."""
    arg = _unwrap(arg)
    if isinstance(arg, MatrixSelector):
        vs = arg.selector
        ends = ev.window_ends(vs.at, vs.offset_ms, ts)
        return ev.load_range(vs, arg.range_ms, ends), ends, arg.range_ms, vs.at is not None
    if isinstance(arg, SubqueryExpr):
        series, ends = ev.subquery(arg, ts)
        return series, ends, arg.range_ms, arg.at is not None
    raise QueryError("expected a range vector argument")


def _scalar_params(ev: Evaluator, node: Call, skip: int, ts: list[int]) -> list[list[float]]:
    params = []
    for i, arg in enumerate(node.args):
        if i == skip:
            continue
        value = ev.eval(arg, ts)
        if not isinstance(value, ScalarSteps):
            raise QueryError(f"expected a scalar argument to {node.func}()")
        params.append(value.vals)
    return params


def _range_call(ev: Evaluator, node: Call, rf: RangeFunction, ts: list[int]) -> list[StepSeries]:
    params = _scalar_params(ev, node, rf.matrix_arg, ts)
    if node.func == "quantile_over_time":
        for q in params[0]:
            if not 0 <= q <= 1:
                ev.annotations.warn(
                    f"quantile value should be between 0 and 1, got {format_g(q)}",
                    _pos(node.args[0]),
                )
    series, ends, range_ms, pinned = _range_input(ev, node.args[rf.matrix_arg], ts)
    # With @ every step sees the same window; only predict_linear still
    # depends on the step time (Prometheus's @-unsafe functions).
    invariant = pinned and node.func != "predict_linear"
    fn = rf.fn
    n = len(ts)
    steps = 1 if invariant else n
    step_params = [tuple(p[k] for p in params) for k in range(steps)]
    w = Window()
    out: list[StepSeries] = []
    for count, s in enumerate(series):
        if count % 512 == 0:
            ev.check_time()
        st = s.ts
        w.series(st, s.vals)
        vals: list[float | None] = []
        found = False
        if rf.series_fn is not None:
            vals = rf.series_fn(st, s.vals, ends[:steps], range_ms)
            found = any(v is not None for v in vals)
            steps_left = 0
        else:
            steps_left = steps
        for k in range(steps_left):
            end = ends[k]
            start = end - range_ms
            lo = bisect_right(st, start)
            hi = bisect_right(st, end)
            if lo >= hi:
                vals.append(None)
                continue
            w.lo, w.hi, w.start, w.end, w.step_t, w.params = (
                lo,
                hi,
                start,
                end,
                ts[k],
                step_params[k],
            )
            v = fn(w)
            if v is not None:
                found = True
            vals.append(v)
        if not found:
            continue
        if steps != n:
            vals = vals * n
        if rf.counter:
            metric = s.labels.name
            if metric and not metric.endswith(COUNTER_SUFFIXES):
                ev.annotations.info(
                    "metric might not be a counter, name does not end in "
                    f'_total/_sum/_count/_bucket: "{metric}"',
                    _pos(node.args[rf.matrix_arg]),
                )
        out.append(StepSeries(s.labels, vals, s.drop_name or not rf.keeps_name))
    return out


def absent_labels(arg: Expr) -> Labels:
    """The labels ``absent()`` gives its result: the selector's equality matchers."""
    if isinstance(arg, MatrixSelector):
        arg = arg.selector
    if not isinstance(arg, VectorSelector):
        return Labels()
    values: dict[str, str] = {}
    seen: set[str] = set()
    for m in arg.matchers:
        if m.name == METRIC_NAME:
            continue
        if m.type is MatchType.EQUAL and m.name not in seen:
            values[m.name] = m.value
            seen.add(m.name)
        else:
            values.pop(m.name, None)
    return Labels(values.items())


def _absent_over_time(ev: Evaluator, node: Call, ts: list[int]) -> list[StepSeries]:
    series, ends, range_ms, _ = _range_input(ev, node.args[0], ts)
    present = [False] * len(ts)
    for s in series:
        for k, end in enumerate(ends):
            if not present[k] and bisect_right(s.ts, end - range_ms) < bisect_right(s.ts, end):
                present[k] = True
    vals: list[float | None] = [None if p else 1.0 for p in present]
    if all(v is None for v in vals):
        return []
    return [StepSeries(absent_labels(node.args[0]), vals)]


# -- instant-vector helpers --------------------------------------------------------


def _vector_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> list[StepSeries]:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, list):
        raise QueryError(f"expected an instant vector argument to {node.func}()")
    return value


def _scalar_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> list[float]:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, ScalarSteps):
        raise QueryError(f"expected a scalar argument to {node.func}()")
    return value.vals


def _string_arg(ev: Evaluator, node: Call, index: int, ts: list[int]) -> str:
    value = ev.eval(node.args[index], ts)
    if not isinstance(value, StringValue):
        raise QueryError(f"expected a string argument to {node.func}()")
    return value.value


def _map(
    vec: list[StepSeries], fn: Callable[[float], float], *, drop_name: bool = True
) -> list[StepSeries]:
    return [
        StepSeries(
            s.labels, [None if v is None else fn(v) for v in s.vals], s.drop_name or drop_name
        )
        for s in vec
    ]


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


def _math_handler(fn: Callable[[float], float]) -> _Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        return _map(_vector_arg(ev, node, 0, ts), fn)

    return handler


def _round(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    nearest = _scalar_arg(ev, node, 1, ts) if len(node.args) > 1 else [1.0] * len(ts)
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


def _clamp(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    return _clamp_between(vec, _scalar_arg(ev, node, 1, ts), _scalar_arg(ev, node, 2, ts))


def _clamp_min(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    return _clamp_between(vec, _scalar_arg(ev, node, 1, ts), [math.inf] * len(ts))


def _clamp_max(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    return _clamp_between(vec, [-math.inf] * len(ts), _scalar_arg(ev, node, 1, ts))


# -- dates -------------------------------------------------------------------------


def _date_handler(part: Callable[[datetime], int]) -> _Handler:
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
        return _map(_vector_arg(ev, node, 0, ts), fn)

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


# -- scalars, vectors, timestamps ----------------------------------------------------------


def _time(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return ScalarSteps([t / 1000 for t in ts])


def _pi(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return ScalarSteps([math.pi] * len(ts))


def _vector(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return [StepSeries(Labels(), list[float | None](_scalar_arg(ev, node, 0, ts)))]


def _scalar(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    out = []
    for i in range(len(ts)):
        present = [v for s in vec if (v := s.vals[i]) is not None]
        out.append(present[0] if len(present) == 1 else math.nan)
    return ScalarSteps(out)


def _timestamp(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    arg = _unwrap(node.args[0])
    if isinstance(arg, VectorSelector):
        vec = ev.vector_selector(arg, ts, timestamps=True)
        return [StepSeries(s.labels, s.vals, True) for s in vec]
    vec = _vector_arg(ev, node, 0, ts)
    return [
        StepSeries(
            s.labels,
            [None if v is None else t / 1000 for v, t in zip(s.vals, ts, strict=True)],
            True,
        )
        for s in vec
    ]


def _absent(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    vals: list[float | None] = [1.0] * len(ts)
    for s in vec:
        for i, v in enumerate(s.vals):
            if v is not None:
                vals[i] = None
    if all(v is None for v in vals):
        return []
    return [StepSeries(absent_labels(node.args[0]), vals)]


# -- sorting ----------------------------------------------------------------------


def _sort_warning(ev: Evaluator, node: Call) -> None:
    if ev.is_range_query:
        ev.annotations.warn(
            "sort is ineffective for range queries since results are always ordered by labels",
            node.pos,
        )


def _sort_by_value(descending: bool) -> _Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        _sort_warning(ev, node)
        vec = _vector_arg(ev, node, 0, ts)
        if len(ts) != 1:
            return vec

        def key(s: StepSeries) -> tuple[bool, float]:
            v = s.vals[0]
            assert v is not None
            return (math.isnan(v), -v if descending else v)

        return sorted((s for s in vec if s.vals[0] is not None), key=key)

    return handler


def _sort_by_label(descending: bool) -> _Handler:
    def handler(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
        _sort_warning(ev, node)
        vec = _vector_arg(ev, node, 0, ts)
        names = [_string_arg(ev, node, i, ts) for i in range(1, len(node.args))]

        def compare(a: StepSeries, b: StepSeries) -> int:
            for name in names:
                x, y = a.labels.get(name), b.labels.get(name)
                if x != y:
                    return -1 if natural_less(x, y) else 1
            return (a.labels > b.labels) - (a.labels < b.labels)

        return sorted(vec, key=functools.cmp_to_key(compare), reverse=descending)

    return handler


_CHUNK = re.compile(r"\d+|\D+")


def natural_less(a: str, b: str) -> bool:
    """Natural ordering (``cpu2`` before ``cpu10``), as Prometheus's sort_by_label."""
    xs: list[str] = _CHUNK.findall(a)
    ys: list[str] = _CHUNK.findall(b)
    for i, x in enumerate(xs):
        if i >= len(ys):
            return False
        y = ys[i]
        if x.isdigit() and y.isdigit():
            if int(x) != int(y):
                return int(x) < int(y)
        elif x != y:
            return x < y
        if i == len(xs) - 1:
            return True
        if i == len(ys) - 1:
            return False
    return False


# -- labels -----------------------------------------------------------------------

_TEMPLATE = re.compile(r"\$(\$|\{([^}]*)\}|([A-Za-z0-9_]+))")


def expand_template(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""

    def group(m: re.Match[str]) -> str:
        if m.group(1) == "$":
            return "$"
        ref = m.group(2) if m.group(2) is not None else m.group(3)
        try:
            value = match.group(int(ref) if ref.isdigit() else ref)
        except (IndexError, KeyError, re.error):
            return ""
        return value or ""

    return _TEMPLATE.sub(group, template)


def _label_replace(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    dst, repl, src, pattern = (_string_arg(ev, node, i, ts) for i in range(1, 5))
    try:
        regex = re.compile(f"(?s:{pattern})\\Z")
    except re.error as exc:
        raise EvaluationError(f"invalid regular expression in label_replace(): {pattern}") from exc
    if not valid_label_name(dst):
        raise EvaluationError(f"invalid destination label name in label_replace(): {go_quote(dst)}")
    out = []
    for s in vec:
        m = regex.match(s.labels.get(src))
        if m is None:
            out.append(s)
            continue
        value = expand_template(repl, m)
        labels = s.labels.with_({dst: value})
        out.append(StepSeries(labels, list(s.vals), s.drop_name and dst != METRIC_NAME))
    return merge_same_labels(out)


def _label_join(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = _vector_arg(ev, node, 0, ts)
    dst = _string_arg(ev, node, 1, ts)
    sep = _string_arg(ev, node, 2, ts)
    srcs = [_string_arg(ev, node, i, ts) for i in range(3, len(node.args))]
    if not valid_label_name(dst):
        raise EvaluationError(f"invalid destination label name in label_join(): {go_quote(dst)}")
    out = []
    for s in vec:
        value = sep.join(s.labels.get(name) for name in srcs)
        labels = s.labels.with_({dst: value})
        out.append(StepSeries(labels, list(s.vals), s.drop_name and dst != METRIC_NAME))
    return merge_same_labels(out)


# -- histograms -----------------------------------------------------------------


def _histogram_quantile(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    qs = _scalar_arg(ev, node, 0, ts)
    vec = _vector_arg(ev, node, 1, ts)
    for q in qs:
        if not 0 <= q <= 1:
            ev.annotations.warn(
                f"quantile value should be between 0 and 1, got {format_g(q)}", _pos(node.args[0])
            )
    return histograms.quantile_over_buckets(ev, qs, vec, _pos(node.args[1]))


def _histogram_fraction(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    lower = _scalar_arg(ev, node, 0, ts)
    upper = _scalar_arg(ev, node, 1, ts)
    vec = _vector_arg(ev, node, 2, ts)
    return histograms.fraction_over_buckets(ev, lower, upper, vec, _pos(node.args[2]))


def _native_only(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    # These read native histograms; float samples give no result.
    _vector_arg(ev, node, 0, ts)
    return []


_Handler = Callable[["Evaluator", Call, list[int]], StepValue]

_HANDLERS: dict[str, _Handler] = {
    **{name: _math_handler(fn) for name, fn in MATH.items()},
    **{name: _date_handler(part) for name, part in DATES.items()},
    "round": _round,
    "clamp": _clamp,
    "clamp_min": _clamp_min,
    "clamp_max": _clamp_max,
    "time": _time,
    "pi": _pi,
    "vector": _vector,
    "scalar": _scalar,
    "absent": _absent,
    "sort": _sort_by_value(False),
    "sort_desc": _sort_by_value(True),
    "sort_by_label": _sort_by_label(False),
    "sort_by_label_desc": _sort_by_label(True),
    "label_replace": _label_replace,
    "label_join": _label_join,
    "histogram_quantile": _histogram_quantile,
    "histogram_fraction": _histogram_fraction,
    **dict.fromkeys(
        (
            "histogram_count",
            "histogram_sum",
            "histogram_avg",
            "histogram_stddev",
            "histogram_stdvar",
        ),
        _native_only,
    ),
}
