"""The PromQL evaluator: instant and range queries over a :class:`Storage`.

Semantics follow Prometheus 3 for float samples: a 5-minute lookback whose
window is left-open ``(t - lookback, t]``, staleness markers end a series at
once, range windows ``(t - range, t]``, ``offset`` and ``@`` (``start()`` and
``end()`` are the range query's bounds), subqueries aligned to absolute
multiples of their step, and ``__name__`` removed at once, or at the end of
the query with the ``promql-delayed-name-removal`` feature.

Every node is evaluated at all steps at once (see :mod:`.stepvec`): each
selector loads its data once per query over the whole range it needs, and
windows are found by bisection over the sorted sample times.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, cast

from soulwatch.clock import Clock, SystemClock
from soulwatch.exceptions import EvaluationError, ParseError, QueryError, QueryLimitError
from soulwatch.promql import aggregations, binops, functions
from soulwatch.promql.ast import (
    AggregateExpr,
    At,
    AtKind,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    ValueType,
    VectorSelector,
    value_type,
)
from soulwatch.promql.columnar import RangeBatch, any_nan, latest_of
from soulwatch.promql.columnar import available as columnar_available

try:
    from soulwatch.promql import stepcols
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    stepcols = None  # type: ignore[assignment]
from soulwatch.promql.parser import parse
from soulwatch.promql.stepvec import (
    METADATA_LABELS,
    NAME_ONLY,
    Annotations,
    RangeSeries,
    RangeValue,
    ScalarSteps,
    StepSeries,
    StepValue,
    StringValue,
    drop_labels,
    finalize_names,
)
from soulwatch.promql.values import (
    Matrix,
    QueryResult,
    Sample,
    Scalar,
    String,
    Vector,
)
from soulwatch.tsdb.model import ArraySeries, Labels, Matcher, Series, is_stale_nan
from soulwatch.tsdb.storage import ArrayStorage, BatchStorage, Storage

if TYPE_CHECKING:
    from soulwatch.tsdb.db import SeriesBatch

#: Prometheus's limit on the number of steps of one range query.
MAX_POINTS_PER_SERIES = 11_000

#: Keep ``__name__`` until the end of the query when an operation removes it,
#: so ``label_replace`` or ``by (__name__)`` can still see it.
DELAYED_NAME_REMOVAL = "promql-delayed-name-removal"
#: Treat ``__type__`` and ``__unit__`` as part of the metric's identity: they
#: are removed together with ``__name__``.
TYPE_AND_UNIT_LABELS = "type-and-unit-labels"
#: The ``--enable-feature`` names the engine knows (as Prometheus spells them).
FEATURES = frozenset({DELAYED_NAME_REMOVAL, TYPE_AND_UNIT_LABELS})

TOO_MANY_SAMPLES = "query processing would load too many samples into memory in query execution"


class Engine:
    """Evaluates PromQL over a storage; implements :class:`~soulwatch.promql.values.QueryEngine`.

    ``max_samples`` bounds the samples one query may load or produce and
    ``timeout_s`` its run time; both stop the query with
    :class:`~soulwatch.exceptions.QueryLimitError`. A query given a ``cancel``
    event stops the same way soon after the event is set (a caller that no
    longer waits for it: an API request past its own timeout). ``default_subquery_step_ms``
    is the step of a subquery written without one (Prometheus uses the global
    evaluation interval, 1 minute by default). ``features`` enables behaviour
    Prometheus keeps behind ``--enable-feature`` flags of the same names
    (:data:`FEATURES`). ``columnar=False`` evaluates every range function
    step by step (the reference the array path is tested against);
    ``columnar_min_windows`` is the smallest call (series x steps) that takes
    the array path.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        lookback_delta_ms: int = 300_000,
        max_samples: int = 50_000_000,
        timeout_s: float = 120.0,
        clock: Clock | None = None,
        default_subquery_step_ms: int = 60_000,
        features: Iterable[str] = (),
        columnar: bool = True,
        columnar_min_windows: int = 64,
    ) -> None:
        self.features = frozenset(features)
        unknown = sorted(self.features - FEATURES)
        if unknown:
            raise QueryError(
                f"unknown PromQL feature {unknown[0]!r} (known: {', '.join(sorted(FEATURES))})"
            )
        self.storage = storage
        self.lookback_delta_ms = lookback_delta_ms
        self.max_samples = max_samples
        self.timeout_s = timeout_s
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.default_subquery_step_ms = default_subquery_step_ms
        #: Compute range functions over whole arrays (:mod:`.columnar`) where
        #: they are vectorised; ``False`` keeps every window on the step-by-step loop.
        self.columnar = columnar and columnar_available()
        #: Below this many windows (series x steps) the loop is cheaper than
        #: packing arrays: a rule's instant query over a few series stays on it.
        self.columnar_min_windows = columnar_min_windows
        # Rules send the same few query strings every interval; parse each once.
        self._parsed: dict[str, Expr] = {}

    def instant(
        self, query: str | Expr, t_ms: int, *, cancel: threading.Event | None = None
    ) -> QueryResult:
        """Evaluate ``query`` at ``t_ms``: a vector, scalar, string, or matrix (range selector)."""
        expr, text = self._parse(query)
        ev = Evaluator(self, expr, text, start_ms=t_ms, end_ms=t_ms, step_ms=0, cancel=cancel)
        value = ev.eval(expr, [t_ms])
        # A range selector's result is a matrix even when it holds no series.
        kind = ValueType.MATRIX if isinstance(value, RangeValue) else None
        return ev.result(_to_instant(value, t_ms, ev.metadata), value_type=kind)

    def range(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        cancel: threading.Event | None = None,
    ) -> QueryResult:
        """Evaluate ``query`` at every step from ``start_ms`` to ``end_ms``; returns a matrix."""
        if step_ms <= 0:
            raise QueryError(
                "zero or negative query resolution step widths are not accepted. "
                "Try a positive integer"
            )
        if end_ms < start_ms:
            raise QueryError("end timestamp must not be before start time")
        steps = (end_ms - start_ms) // step_ms + 1
        if steps > MAX_POINTS_PER_SERIES:
            raise QueryError(
                "exceeded maximum resolution of 11,000 points per timeseries. "
                "Try decreasing the query resolution (?step=XX)"
            )
        expr, text = self._parse(query)
        kind = value_type(expr)
        if kind in (ValueType.STRING, ValueType.MATRIX):
            # Known before evaluating: a bad query (Prometheus answers bad_data).
            raise RangeQueryTypeError(
                f'invalid expression type "{_TYPE_NAMES[kind]}" for range query, '
                "must be Scalar or instant Vector"
            )
        ts = [start_ms + i * step_ms for i in range(steps)]
        ev = Evaluator(
            self, expr, text, start_ms=start_ms, end_ms=end_ms, step_ms=step_ms, cancel=cancel
        )
        value = ev.eval(expr, ts)
        if isinstance(value, StringValue | RangeValue):  # pragma: no cover - typed above
            raise QueryError("a range query must give a scalar or an instant vector")
        return ev.result(_to_matrix(value, ts, ev.metadata), value_type=ValueType.MATRIX)

    def _parse(self, query: str | Expr) -> tuple[Expr, str]:
        if isinstance(query, Expr):
            return query, ""
        expr = self._parsed.get(query)
        if expr is None:
            if len(self._parsed) >= _PARSE_CACHE_SIZE:
                self._parsed.clear()
            expr = self._parsed[query] = parse(query)
        return expr, query


_PARSE_CACHE_SIZE = 1024
#: Steps a selector evaluates between two looks at the query's timeout and cancel event.
_CHECK_EVERY_STEPS = 4096
_TYPE_NAMES = {ValueType.STRING: "string", ValueType.MATRIX: "range vector"}


class RangeQueryTypeError(ParseError):
    """A range query over a string or range vector: a bad query, not a failed evaluation.

    It is a :class:`ParseError` because, like one, it is found before any data
    is read and the query parameter is what is wrong; its text is Prometheus's.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.args = (message,)

    def __str__(self) -> str:
        return self.reason


def _to_instant(
    value: StepValue, t_ms: int, metadata: frozenset[str]
) -> Scalar | String | Vector | Matrix:
    if isinstance(value, ScalarSteps):
        return Scalar(t_ms, value.vals[0])
    if isinstance(value, StringValue):
        return String(t_ms, value.value)
    if isinstance(value, RangeValue):
        named = finalize_range(value.series, metadata)
        return [Series(s.labels, list(s.ts), list(s.vals)) for s in named]
    out: Vector = []
    for s in finalize_names(value, metadata):
        v = s.vals[0]
        if v is not None:
            out.append(Sample(s.labels, t_ms, v))
    return out


def finalize_range(
    series: list[RangeSeries], metadata: frozenset[str] = NAME_ONLY
) -> list[RangeSeries]:
    """Drop flagged ``__name__`` labels of a range vector; duplicate label sets are an error."""
    out = [
        RangeSeries(drop_labels(s.labels, metadata), s.ts, s.vals) if s.drop_name else s
        for s in series
    ]
    if len({s.labels for s in out}) != len(out):
        raise EvaluationError("vector cannot contain metrics with the same labelset")
    return out


def _to_matrix(value: StepValue, ts: list[int], metadata: frozenset[str]) -> Matrix:
    if isinstance(value, ScalarSteps):
        return [Series(Labels(), list(ts), list(value.vals))]
    assert isinstance(value, list)
    out: Matrix = []
    for s in finalize_names(value, metadata):
        if s.column is not None:
            # One row at a time: each conversion to Python floats is short.
            values, valid, full = s.column
            if full:
                out.append(Series(s.labels, ts[:], values.tolist()))
                continue
            kept = valid.nonzero()[0].tolist()
            if kept:
                out.append(Series(s.labels, [ts[i] for i in kept], values[valid].tolist()))
            continue
        if None not in s.vals:
            # A value at every step (the usual chart line): no filtering per point.
            out.append(Series(s.labels, ts[:], cast("list[float]", s.vals[:])))
            continue
        times = [t for t, v in zip(ts, s.vals, strict=True) if v is not None]
        if times:
            out.append(Series(s.labels, times, [v for v in s.vals if v is not None]))
    out.sort(key=lambda s: s.labels)
    return out


def _children(node: Expr) -> tuple[Expr, ...]:
    if isinstance(node, ParenExpr | UnaryExpr | SubqueryExpr):
        return (node.expr,)
    if isinstance(node, BinaryExpr):
        return (node.lhs, node.rhs)
    if isinstance(node, AggregateExpr):
        return (node.expr,) if node.param is None else (node.param, node.expr)
    if isinstance(node, Call):
        return node.args
    return ()


def _structure(node: Expr, keys: dict[int, object]) -> object:
    """A hashable key equal for subtrees written the same way (positions ignored)."""
    key = keys.get(id(node))
    if key is not None:
        return key
    parts: list[object] = [type(node).__name__]
    for f in fields(node):
        if f.name == "pos":
            continue
        value = getattr(node, f.name)
        if isinstance(value, Expr):
            value = _structure(value, keys)
        elif isinstance(value, tuple) and value and isinstance(value[0], Expr):
            value = tuple(_structure(v, keys) for v in value)
        parts.append(value)
    key = keys[id(node)] = tuple(parts)
    return key


def _repeated_subtrees(expr: Expr) -> dict[int, object]:
    """Structural keys of the nodes whose subtree occurs more than once in ``expr``."""
    keys: dict[int, object] = {}
    _structure(expr, keys)
    counts: dict[object, int] = {}
    stack = [expr]
    nodes: list[Expr] = []
    while stack:
        node = stack.pop()
        if isinstance(node, NumberLiteral | StringLiteral):
            continue
        nodes.append(node)
        counts[keys[id(node)]] = counts.get(keys[id(node)], 0) + 1
        stack.extend(_children(node))
    return {id(n): keys[id(n)] for n in nodes if counts[keys[id(n)]] > 1}


class Evaluator:
    """The state of one query: its bounds, limits, loaded data and annotations."""

    def __init__(
        self,
        engine: Engine,
        expr: Expr,
        text: str,
        *,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        cancel: threading.Event | None = None,
    ) -> None:
        self.engine = engine
        self.cancel = cancel
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.step_ms = step_ms
        self.is_range_query = step_ms > 0
        self.columnar = engine.columnar
        self.delayed_names = DELAYED_NAME_REMOVAL in engine.features
        #: The labels removed together with ``__name__``.
        self.metadata = METADATA_LABELS if TYPE_AND_UNIT_LABELS in engine.features else NAME_ONLY
        self.annotations = Annotations(text)
        self.samples = 0
        self.deadline = engine.clock.monotonic() + engine.timeout_s
        self._cache: dict[tuple[tuple[Matcher, ...], int, int], list[Series | ArraySeries]] = {}
        self._batches: dict[tuple[tuple[Matcher, ...], int, int], SeriesBatch | None] = {}
        # Subexpressions written more than once (``a / sum(a)``, the 5xx ratio's
        # denominator and guard) are evaluated once per step range.
        self._shared = _repeated_subtrees(expr)
        self._results: dict[tuple[object, int, int, int], StepValue] = {}

    # -- limits ---------------------------------------------------------------

    def charge(self, samples: int) -> None:
        """Count ``samples`` against the query's sample budget."""
        self.samples += samples
        if self.samples > self.engine.max_samples:
            raise QueryLimitError(
                f"{TOO_MANY_SAMPLES} (more than {self.engine.max_samples} samples)"
            )

    def check_time(self) -> None:
        """Stop the query once it has run past its timeout or its caller cancelled it."""
        if self.cancel is not None and self.cancel.is_set():
            raise QueryLimitError("query was cancelled in expression evaluation")
        if self.engine.clock.monotonic() > self.deadline:
            raise QueryLimitError(
                f"query timed out in expression evaluation (after {self.engine.timeout_s:g}s)"
            )

    def result(
        self, value: Scalar | String | Vector | Matrix, value_type: ValueType | None = None
    ) -> QueryResult:
        """Wrap a final value with the collected annotations."""
        if value_type is None:
            if isinstance(value, Scalar):
                value_type = ValueType.SCALAR
            elif isinstance(value, String):
                value_type = ValueType.STRING
            elif value and isinstance(value[0], Series):
                value_type = ValueType.MATRIX
            else:
                value_type = ValueType.VECTOR
        return QueryResult(
            value,
            warnings=list(self.annotations.warnings),
            infos=list(self.annotations.infos),
            value_type=value_type,
        )

    # -- evaluation -----------------------------------------------------------

    def eval(self, node: Expr, ts: list[int]) -> StepValue:
        """Evaluate ``node`` at the (ascending, evenly spaced) step times ``ts``."""
        shared = self._shared.get(id(node))
        if shared is None:
            return self._names(self._eval(node, ts))
        key = (shared, ts[0], ts[-1], len(ts))
        value = self._results.get(key)
        if value is None:
            value = self._results[key] = self._names(self._eval(node, ts))
        return value

    def _names(self, value: StepValue) -> StepValue:
        """Drop pending names at once unless delayed name removal is enabled.

        Operations only flag a series whose ``__name__`` they remove; by
        default (Prometheus 3 without ``promql-delayed-name-removal``) the
        name goes right away, and series that then share a label set at a
        step are an error, as in Prometheus.
        """
        if self.delayed_names:
            return value
        if isinstance(value, list):
            if any(s.drop_name for s in value):
                return finalize_names(value, self.metadata)
        elif isinstance(value, RangeValue) and any(s.drop_name for s in value.series):
            return RangeValue(finalize_range(value.series, self.metadata))
        return value

    def _eval(self, node: Expr, ts: list[int]) -> StepValue:
        if isinstance(node, NumberLiteral):
            return ScalarSteps([node.value] * len(ts))
        if isinstance(node, StringLiteral):
            return StringValue(node.value)
        if isinstance(node, ParenExpr):
            return self.eval(node.expr, ts)
        if isinstance(node, VectorSelector):
            return self.vector_selector(node, ts)
        if isinstance(node, MatrixSelector):
            return RangeValue(self.matrix_at(node, ts[0]))
        if isinstance(node, SubqueryExpr):
            series, _ = self.subquery(node, [ts[0]])
            return RangeValue([RangeSeries(s.labels, s.ts, s.vals, s.drop_name) for s in series])
        if isinstance(node, UnaryExpr):
            return self._unary(node, ts)
        if isinstance(node, BinaryExpr):
            return binops.evaluate(self, node, ts)
        if isinstance(node, AggregateExpr):
            return aggregations.evaluate(self, node, ts)
        if isinstance(node, Call):
            return functions.evaluate(self, node, ts)
        raise QueryError(f"unsupported expression node {type(node).__name__}")

    def _unary(self, node: UnaryExpr, ts: list[int]) -> StepValue:
        value = self.eval(node.expr, ts)
        if node.op != "-":
            return value
        if isinstance(value, ScalarSteps):
            return ScalarSteps([-v for v in value.vals])
        if not isinstance(value, list):
            raise QueryError("unary minus needs a scalar or an instant vector")
        return [
            StepSeries(s.labels, None, True, (-s.column[0], s.column[1], s.column[2]))
            if s.column is not None
            else StepSeries(s.labels, [None if v is None else -v for v in s.vals], True)
            for s in value
        ]

    def at_time(self, at: At) -> int:
        """The time an ``@`` modifier pins to."""
        if at.kind is AtKind.START:
            return self.start_ms
        if at.kind is AtKind.END:
            return self.end_ms
        return at.timestamp_ms

    def select(
        self, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[Series | ArraySeries]:
        """Load matching series over ``[mint, maxt]`` once per query.

        A storage that hands out arrays (the embedded TSDB) is read that way:
        no Python object per sample, and the array path reads the buffers.
        """
        key = (tuple(matchers), mint, maxt)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        out: list[Series | ArraySeries] = []
        storage = self.engine.storage
        found: Iterable[Series | ArraySeries] = (
            storage.select_arrays(matchers, mint, maxt)
            if isinstance(storage, ArrayStorage)
            else storage.select(matchers, mint, maxt)
        )
        # Samples are charged in batches, each before the time check that
        # follows it: the same errors at the same series as one charge each.
        pending = 0
        for s in found:
            pending += len(s.timestamps)
            if len(out) % 256 == 0:
                self.charge(pending)
                pending = 0
                self.check_time()
            out.append(s)
        if pending:
            self.charge(pending)
        self._cache[key] = out
        return out

    def vector_selector(
        self, vs: VectorSelector, ts: list[int], *, timestamps: bool = False
    ) -> list[StepSeries]:
        """The selector's value at each step; ``timestamps`` gives sample times (s) instead."""
        if vs.at is not None:
            times = [self.at_time(vs.at) - vs.offset_ms]
        else:
            off = vs.offset_ms
            times = [t - off for t in ts]
        lookback = self.engine.lookback_delta_ms
        out: list[StepSeries] = []
        if self.columnar and stepcols is not None and vs.at is None and len(times) > 1:
            # A range query: every step of a batch of series at once, kept as columns.
            loaded = self.select(vs.matchers, times[0] - lookback + 1, times[-1])
            for index, column in stepcols.lookback_columns(
                loaded, times, lookback, timestamps=timestamps
            ):
                if len(out) % 256 == 0:
                    self.check_time()
                self.charge(len(ts))
                out.append(StepSeries(loaded[index].labels, None, column=column))
            return out
        if self.columnar and len(times) == 1:
            # One time (an instant query, or ``@``): each series' last sample in
            # the lookback window is the last of its selection.
            batch = self.select_batch(vs.matchers, times[0] - lookback + 1, times[0])
            if batch is not None:
                return self._latest(batch, len(ts), timestamps=timestamps)
        work = 0
        for s in self.select(vs.matchers, times[0] - lookback + 1, times[-1]):
            # Every few thousand steps: many short series and a few long ones alike.
            work += len(times)
            if work >= _CHECK_EVERY_STEPS:
                work = 0
                self.check_time()
            st, sv = s.timestamps, s.values
            vals: list[float | None] = []
            lo = 0
            found = False
            for t in times:
                i = bisect_right(st, t, lo) - 1
                if i >= 0 and st[i] > t - lookback:
                    lo = i
                    v = sv[i]
                    if math.isnan(v) and is_stale_nan(v):
                        vals.append(None)
                    else:
                        vals.append(st[i] / 1000.0 if timestamps else v)
                        found = True
                else:
                    vals.append(None)
            if not found:
                continue
            if len(vals) != len(ts):
                vals = vals * len(ts)
            # Every step's value is held at once: count it like a loaded sample.
            self.charge(len(ts))
            out.append(StepSeries(s.labels, vals))
        return out

    def _latest(self, batch: SeriesBatch, steps: int, *, timestamps: bool) -> list[StepSeries]:
        """Each series' last sample of ``batch`` (its time in s with ``timestamps``) at ``steps``.

        A series whose last sample is a staleness marker has no value.
        """
        last = latest_of(batch.lengths)
        picked = (batch.times[last] / 1000.0) if timestamps else batch.values[last]
        values = cast("list[float]", picked.tolist())
        # A marker's time is no value either: markers are looked for in the values.
        markers = cast("list[float]", batch.values[last].tolist()) if timestamps else values
        out = [
            StepSeries(labels, [value] * steps)
            for labels, value, marker in zip(batch.labels, values, markers, strict=True)
            if not is_stale_nan(marker)
        ]
        # Every step's value is held at once: counted like loaded samples.
        self.charge(steps * len(out))
        return out

    def select_batch(self, matchers: Sequence[Matcher], mint: int, maxt: int) -> SeriesBatch | None:
        """The matching series over ``[mint, maxt]`` in one batch, once per query; ``None``
        when the storage cannot hand them out that way (then :meth:`select` reads them).
        """
        storage = self.engine.storage
        if not isinstance(storage, BatchStorage):
            return None
        key = (tuple(matchers), mint, maxt)
        if key in self._batches:
            return self._batches[key]
        batch = storage.select_batch(matchers, mint, maxt)
        if batch is not None:
            # The samples of all series in one charge: the same limit error as
            # one charge per series, since nothing else is charged between them.
            self.charge(len(batch.times))
            self.check_time()
        self._batches[key] = batch
        return batch

    def load_range(
        self, vs: VectorSelector, range_ms: int, ends: list[int]
    ) -> Sequence[RangeSeries]:
        """The selector's samples for windows ``(end - range, end]``, minus staleness markers.

        On the array path a selection the storage hands out in one batch
        stays one (a :class:`~soulwatch.promql.columnar.RangeBatch`) when it
        holds no NaN, hence no staleness marker.
        """
        out: list[RangeSeries] = []
        mint, maxt = min(ends) - range_ms + 1, max(ends)
        batch = self.select_batch(vs.matchers, mint, maxt) if self.columnar else None
        loaded: Sequence[Series | ArraySeries]
        if batch is None:
            loaded = self.select(vs.matchers, mint, maxt)
        else:
            whole = RangeBatch.without_nan(batch.labels, batch.times, batch.values, batch.lengths)
            if whole is not None:
                return whole
            loaded = batch.series()
        if not any_nan([s.values for s in loaded]):
            # No NaN anywhere, so no staleness marker: every series as it is.
            return [RangeSeries(s.labels, s.timestamps, s.values) for s in loaded if s.timestamps]
        for s in loaded:
            st, sv = s.timestamps, s.values
            total = sum(sv)
            if math.isnan(total):  # only a series holding a NaN can hold a marker
                pairs = [(t, v) for t, v in zip(st, sv, strict=True) if not is_stale_nan(v)]
                st = [t for t, _ in pairs]
                sv = [v for _, v in pairs]
            if st:
                out.append(RangeSeries(s.labels, st, sv))
        return out

    def window_ends(self, vs_at: At | None, offset_ms: int, ts: list[int]) -> list[int]:
        """The end of the range window at each step, after ``offset`` and ``@``."""
        if vs_at is not None:
            return [self.at_time(vs_at) - offset_ms] * len(ts)
        return [t - offset_ms for t in ts]

    def matrix_at(self, ms: MatrixSelector, t: int) -> list[RangeSeries]:
        """A range selector's samples at one evaluation time (a range-vector result)."""
        vs = ms.selector
        end = self.window_ends(vs.at, vs.offset_ms, [t])[0]
        out = []
        for s in self.load_range(vs, ms.range_ms, [end]):
            lo = bisect_right(s.ts, end - ms.range_ms)
            hi = bisect_right(s.ts, end)
            if lo < hi:
                out.append(RangeSeries(s.labels, s.ts[lo:hi], s.vals[lo:hi]))
        return out

    def subquery(self, sq: SubqueryExpr, ts: list[int]) -> tuple[list[RangeSeries], list[int]]:
        """Evaluate a subquery's inner expression at its aligned steps.

        Returns the inner series (points at the inner steps) and the window
        end for each outer step.
        """
        step = sq.step_ms or self.engine.default_subquery_step_ms
        ends = self.window_ends(sq.at, sq.offset_ms, ts)
        first_start = min(ends) - sq.range_ms
        first = (first_start // step) * step
        if first <= first_start:
            first += step
        last = max(ends)
        if last < first:
            return [], ends
        count = (last - first) // step + 1
        self.charge(count)
        inner_ts = [first + i * step for i in range(count)]
        value = self.eval(sq.expr, inner_ts)
        if not isinstance(value, list):
            raise QueryError("subquery is only allowed on instant vector")
        out: list[RangeSeries] = []
        for s in value:
            times = [t for t, v in zip(inner_ts, s.vals, strict=True) if v is not None]
            self.charge(len(times))
            out.append(
                RangeSeries(s.labels, times, [v for v in s.vals if v is not None], s.drop_name)
            )
        return out, ends
