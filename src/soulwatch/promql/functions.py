"""Function calls: dispatch, range-vector windows, absent, scalars and timestamps.

The window functions live in :mod:`.rangefuncs`, math and dates in
:mod:`.mathfuncs`, labels and sorting in :mod:`.labelfuncs`, classic
histograms in :mod:`.histograms`; this module evaluates arguments, walks the
windows and dispatches.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from soulwatch.exceptions import QueryError
from soulwatch.promql import (
    columnar,
    histcolumns,
    histograms,
    info,
    interrupts,
    labelfuncs,
    mathfuncs,
)
from soulwatch.promql.aggregations import format_g
from soulwatch.promql.ast import Call, Expr, MatrixSelector, ParenExpr, SubqueryExpr, VectorSelector
from soulwatch.promql.funcargs import Handler, scalar_arg, string_arg, vector_arg
from soulwatch.promql.rangefuncs import RANGE_FUNCTIONS, RangeFunction, Window
from soulwatch.promql.stepvec import (
    RangeSeries,
    ScalarSteps,
    StepSeries,
    StepValue,
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
) -> tuple[Sequence[RangeSeries], list[int], int, bool]:
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
    # depends on the step time (Prometheus's @-unsafe functions), and a
    # parameter that changes from step to step (quantile_over_time(scalar(q), ...)).
    invariant = (
        pinned
        and node.func != "predict_linear"
        and all(len(set(map(repr, p))) <= 1 for p in params)
    )
    n = len(ts)
    steps = 1 if invariant else n
    out: list[StepSeries] = []
    columns = None
    if ev.columnar and len(series) * steps >= ev.engine.columnar_min_windows:
        ev.check_time()
        with interrupts.checked_by(ev.check_time):
            columns = columnar.evaluate(
                node.func,
                series,
                ends[:steps],
                range_ms,
                keeps_name=rf.keeps_name,
                step_times=ts[:steps],
                params=params,
            )
    if columns is not None:
        # One charge for all: nothing else happens between the per-series charges.
        ev.charge(n * len(columns))
        if steps == n:
            out.extend(columns)
        else:
            out.extend(StepSeries(col.labels, col.vals * n, col.drop_name) for col in columns)
    elif rf.series_fn is not None:
        series_fn = rf.series_fn
        step_ends = ends[:steps]
        for count, s in enumerate(series):
            if count % 512 == 0:
                ev.check_time()
            vals = series_fn(s.ts, s.vals, step_ends, range_ms)
            if vals.count(None) != len(vals):
                ev.charge(n)
                out.append(StepSeries(s.labels, vals if steps == n else vals * n, True))
    else:
        _window_loop(
            ev, rf, series, ends=ends, range_ms=range_ms, ts=ts, params=params, steps=steps, out=out
        )
    if rf.counter:
        _counter_info(ev, out, _pos(node.args[rf.matrix_arg]))
    return out


def _counter_info(ev: Evaluator, out: list[StepSeries], pos: int) -> None:
    checked: set[str] = set()
    for s in out:
        metric = s.labels.name
        if metric in checked:
            continue
        checked.add(metric)
        if metric and not metric.endswith(COUNTER_SUFFIXES):
            ev.annotations.info(
                "metric might not be a counter, name does not end in "
                f'_total/_sum/_count/_bucket: "{metric}"',
                pos,
            )


def _window_loop(
    ev: Evaluator,
    rf: RangeFunction,
    series: Sequence[RangeSeries],
    *,
    ends: list[int],
    range_ms: int,
    ts: list[int],
    params: list[list[float]],
    steps: int,
    out: list[StepSeries],
) -> None:
    """Call a per-window function at every step of every series."""
    fn = rf.fn
    n = len(ts)
    step_params = [tuple(p[k] for p in params) for k in range(steps)]
    w = Window()
    for count, s in enumerate(series):
        if count % 512 == 0:
            ev.check_time()
        st = s.ts
        w.series(st, s.vals)
        vals: list[float | None] = []
        found = False
        for k in range(steps):
            if k % 256 == 255:
                # Within a long series too: a cancelled range query stops promptly.
                ev.check_time()
            end = ends[k]
            start = end - range_ms
            lo = bisect_right(st, start)
            hi = bisect_right(st, end)
            if lo >= hi:
                vals.append(None)
                continue
            w.lo, w.hi, w.start, w.end = lo, hi, start, end
            w.step_t, w.params = ts[k], step_params[k]
            v = fn(w)
            if v is not None:
                found = True
            vals.append(v)
        if not found:
            continue
        ev.charge(n)
        if steps != n:
            vals = vals * n
        out.append(StepSeries(s.labels, vals, s.drop_name or not rf.keeps_name))


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


# -- scalars, vectors, timestamps ----------------------------------------------------------


def _time(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return ScalarSteps([t / 1000 for t in ts])


def _pi(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return ScalarSteps([math.pi] * len(ts))


def _vector(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    return [StepSeries(Labels(), list[float | None](scalar_arg(ev, node, 0, ts)))]


def _scalar(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    out = []
    for i in range(len(ts)):
        present = [v for s in vec if (v := s.vals[i]) is not None]
        out.append(present[0] if len(present) == 1 else math.nan)
    return ScalarSteps(out)


def _timestamp(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    arg = _unwrap(node.args[0])
    if isinstance(arg, VectorSelector):
        if arg.at is not None and arg.offset_ms:
            # Prometheus 3 reads the sample at the @ time itself: an offset
            # written beside @ does not move timestamp()'s lookup.
            arg = replace(arg, offset_ms=0)
        vec = ev.vector_selector(arg, ts, timestamps=True)
        return [StepSeries(s.labels, s.vals, True) for s in vec]
    vec = vector_arg(ev, node, 0, ts)
    return [
        StepSeries(
            s.labels,
            [None if v is None else t / 1000 for v, t in zip(s.vals, ts, strict=True)],
            True,
        )
        for s in vec
    ]


def _absent(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    vec = vector_arg(ev, node, 0, ts)
    vals: list[float | None] = [1.0] * len(ts)
    for s in vec:
        for i, v in enumerate(s.vals):
            if v is not None:
                vals[i] = None
    if all(v is None for v in vals):
        return []
    return [StepSeries(absent_labels(node.args[0]), vals)]


# -- histograms -----------------------------------------------------------------


def _histogram_quantile(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    qs = scalar_arg(ev, node, 0, ts)
    vec = vector_arg(ev, node, 1, ts)
    for q in qs:
        if not 0 <= q <= 1:
            ev.annotations.warn(
                f"quantile value should be between 0 and 1, got {format_g(q)}", _pos(node.args[0])
            )
    return histcolumns.quantile_over_buckets(ev, qs, vec, _pos(node.args[1]))


def _histogram_quantiles(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    """Several quantiles at once, each result labelled ``<label>="<q>"``."""
    vec = vector_arg(ev, node, 0, ts)
    label = string_arg(ev, node, 1, ts)
    out: list[StepSeries] = []
    for index in range(2, len(node.args)):
        qs = scalar_arg(ev, node, index, ts)
        for q in qs:
            if not 0 <= q <= 1:
                ev.annotations.warn(
                    f"quantile value should be between 0 and 1, got {format_g(q)}",
                    _pos(node.args[index]),
                )
        results = histcolumns.quantile_over_buckets(ev, qs, vec, _pos(node.args[0]))
        # A quantile computed per step may differ between steps: one label value each.
        for q_text in dict.fromkeys(histograms.format_openmetrics_float(q) for q in qs):
            keep = [histograms.format_openmetrics_float(q) == q_text for q in qs]
            for s in results:
                vals = [v if k else None for v, k in zip(s.vals, keep, strict=True)]
                if any(v is not None for v in vals):
                    out.append(StepSeries(s.labels.with_({label: q_text}), vals, s.drop_name))
    return merge_same_labels(out)


def _histogram_fraction(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    lower = scalar_arg(ev, node, 0, ts)
    upper = scalar_arg(ev, node, 1, ts)
    vec = vector_arg(ev, node, 2, ts)
    return histcolumns.fraction_over_buckets(ev, lower, upper, vec, _pos(node.args[2]))


def _native_only(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    # These read native histograms; float samples give no result.
    vector_arg(ev, node, 0, ts)
    return []


_HANDLERS: dict[str, Handler] = {
    **mathfuncs.HANDLERS,
    **labelfuncs.HANDLERS,
    "time": _time,
    "pi": _pi,
    "vector": _vector,
    "scalar": _scalar,
    "absent": _absent,
    "histogram_quantile": _histogram_quantile,
    "histogram_quantiles": _histogram_quantiles,
    "info": info.evaluate,
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
