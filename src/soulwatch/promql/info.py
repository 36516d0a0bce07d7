"""``info(v [, {label selectors}])``: add the data labels of info metrics to ``v``.

An info metric (``target_info`` unless the selector names others with
``__name__``) belongs to a series when their identifying labels, ``instance``
and ``job``, agree. Each series of ``v`` gains the info series' other labels
(only those the selector names, when it names any); labels the series already
has win. Among info series of one metric that match at a step, the one with
the newest sample wins. A series with no matching info series is kept as it
is unless a selector matcher refuses the empty string, then it is dropped.

As in Prometheus, the info series are read at the time the first argument's
selector reads its data: its ``@`` (or that of the innermost subquery around
it that has one) and its offsets.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import TYPE_CHECKING

from soulwatch.exceptions import EvaluationError
from soulwatch.promql.ast import (
    AggregateExpr,
    At,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    ParenExpr,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from soulwatch.promql.funcargs import vector_arg
from soulwatch.promql.stepvec import DUPLICATE_LABELSET, StepSeries, StepValue
from soulwatch.tsdb.model import METRIC_NAME, Labels, Matcher, MatchType, is_stale_nan

if TYPE_CHECKING:
    from soulwatch.promql.engine import Evaluator

TARGET_INFO = "target_info"
IDENTIFYING_LABELS = ("instance", "job")

_Signature = tuple[str, tuple[tuple[str, str], ...]]


def evaluate(ev: Evaluator, node: Call, ts: list[int]) -> StepValue:
    """Evaluate ``info()`` at every step."""
    at, offset_ms = _reference_time(node.args[0])
    base = vector_arg(ev, node, 0, ts)
    data: dict[str, list[Matcher]] = {}
    name_matchers: list[Matcher] = []
    if len(node.args) > 1:
        selector = node.args[1]
        assert isinstance(selector, VectorSelector)  # the parser allows nothing else
        for m in selector.matchers:
            if m.name == METRIC_NAME:
                name_matchers.append(m)
            else:
                data.setdefault(m.name, []).append(m)
    names = _effective_name_matchers(name_matchers)
    # Info series are not enriched with themselves.
    ignored = {i for i, s in enumerate(base) if all(m.matches(s.labels.name) for m in names)}
    enriched = [s for i, s in enumerate(base) if i not in ignored]
    info = (
        _info_series(ev, enriched, names=names, data=data, at=at, offset_ms=offset_ms, ts=ts)
        if enriched
        else []
    )
    info_names = sorted({labels.name for labels, _ in info})
    refuses_empty = any(not m.matches("") for ms in data.values() for m in ms)

    out: dict[Labels, StepSeries] = {}
    n = len(ts)
    for k in range(n):
        newest = _newest_per_signature(info, k)
        for index, s in enumerate(base):
            value = s.vals[k]
            if value is None:
                continue
            labels = s.labels
            if index not in ignored:
                added = _data_labels(s.labels, info_names, newest, data)
                if added is None:
                    if refuses_empty:
                        continue
                else:
                    labels = labels.with_(added)
            series = out.get(labels)
            if series is None:
                series = out[labels] = StepSeries(labels, [None] * n, s.drop_name)
            elif series.vals[k] is not None:
                raise EvaluationError(DUPLICATE_LABELSET)
            series.vals[k] = value
    return list(out.values())


def _effective_name_matchers(matchers: list[Matcher]) -> list[Matcher]:
    """The ``__name__`` matchers that pick the info metrics."""
    if any(m.type in (MatchType.EQUAL, MatchType.REGEX) for m in matchers):
        return matchers
    if matchers:  # only negative ones: among the *_info metrics
        return [Matcher(MatchType.REGEX, METRIC_NAME, ".+_info"), *matchers]
    return [Matcher.equal(METRIC_NAME, TARGET_INFO)]


def _signature(name: str, labels: Labels) -> _Signature:
    return name, tuple((n, v) for n in IDENTIFYING_LABELS if (v := labels.get(n)))


def _info_series(
    ev: Evaluator,
    base: list[StepSeries],
    *,
    names: list[Matcher],
    data: dict[str, list[Matcher]],
    at: At | None,
    offset_ms: int,
    ts: list[int],
) -> list[tuple[Labels, list[int | None]]]:
    """The info series that may match, with their newest sample time at each step."""
    wanted = {n: {s.labels.get(n) for s in base} - {""} for n in IDENTIFYING_LABELS}
    if not any(wanted.values()):
        return []
    times = [ev.at_time(at) - offset_ms] * len(ts) if at else [t - offset_ms for t in ts]
    lookback = ev.engine.lookback_delta_ms
    matchers = [*names, *(m for ms in data.values() for m in ms)]
    out: list[tuple[Labels, list[int | None]]] = []
    for series in ev.select(matchers, min(times) - lookback + 1, max(times)):
        if any(series.labels.get(n) not in values for n, values in wanted.items() if values):
            continue
        st, sv = series.timestamps, series.values
        newest: list[int | None] = []
        for t in times:
            i = bisect_right(st, t) - 1
            ok = i >= 0 and st[i] > t - lookback and not is_stale_nan(sv[i])
            newest.append(st[i] if ok else None)
        if any(t is not None for t in newest):
            out.append((series.labels, newest))
    return out


def _newest_per_signature(
    info: list[tuple[Labels, list[int | None]]], k: int
) -> dict[_Signature, Labels]:
    best: dict[_Signature, tuple[int, Labels]] = {}
    for labels, newest in info:
        t = newest[k]
        if t is None:
            continue
        sig = _signature(labels.name, labels)
        existing = best.get(sig)
        if existing is not None and existing[0] == t:
            raise EvaluationError(
                f"found duplicate series for info metric: existing {existing[1]} @ {existing[0]}, "
                f"new {labels} @ {t}"
            )
        if existing is None or existing[0] < t:
            best[sig] = (t, labels)
    return {sig: labels for sig, (_, labels) in best.items()}


def _data_labels(
    labels: Labels,
    info_names: list[str],
    newest: dict[_Signature, Labels],
    data: dict[str, list[Matcher]],
) -> dict[str, str] | None:
    """The labels the matching info series add, or ``None`` when none matches."""
    added: dict[str, str] = {}
    matched = False
    for name in info_names:
        info = newest.get(_signature(name, labels))
        if info is None:
            continue
        matched = True
        for label, value in info:
            if label == METRIC_NAME or (data and label not in data):
                continue
            if added.get(label, value) != value:
                raise EvaluationError(f"conflicting label: {label}")
            if labels.get(label):
                continue  # the series' own label wins
            added[label] = value
    return added if matched else None


def _reference_time(expr: Expr) -> tuple[At | None, int]:
    """The ``@`` and offset at which the first selector of ``expr`` reads its data."""
    found = _first_selector(expr, [])
    if found is None:
        return None, 0
    selector, subqueries = found
    at, offset = selector.at, selector.offset_ms
    for sq in reversed(subqueries):
        if at is not None:
            break
        offset += sq.offset_ms
        at = sq.at
    return at, offset


def _first_selector(
    expr: Expr, path: list[SubqueryExpr]
) -> tuple[VectorSelector, list[SubqueryExpr]] | None:
    if isinstance(expr, VectorSelector):
        return expr, path
    children: tuple[Expr, ...] = ()
    if isinstance(expr, MatrixSelector):
        children = (expr.selector,)
    elif isinstance(expr, SubqueryExpr):
        return _first_selector(expr.expr, [*path, expr])
    elif isinstance(expr, ParenExpr | UnaryExpr):
        children = (expr.expr,)
    elif isinstance(expr, BinaryExpr):
        children = (expr.lhs, expr.rhs)
    elif isinstance(expr, AggregateExpr):
        children = (expr.expr,) if expr.param is None else (expr.param, expr.expr)
    elif isinstance(expr, Call):
        children = expr.args
    for child in children:
        found = _first_selector(child, path)
        if found is not None:
            return found
    return None
