"""Run Prometheus's PromQL test scripts (the ``promqltest`` format) against an engine.

A script is a sequence of ``load <step>`` blocks (series in the promtool
expanding notation), ``clear`` and ``eval`` commands with their expected
results and ``expect`` lines. :func:`run_script` loads the data into a
:class:`~soulwatch.tsdb.memory.MemoryStorage`, evaluates every case through
the engine and reports each case as passed, failed or unsupported.

The checks follow Prometheus's own runner: floats compare with a relative
tolerance of 1e-6 (NaN equals NaN), order matters only under ``expect
ordered``, annotations are checked only when an ``expect`` line asks, an
instant query is also run as a range query around its time and, as in
Prometheus, again with ``@ <t>`` pinned on every selector at other times.

Unsupported means the case needs a feature outside soulwatch's scope,
detected explicitly (see :data:`UNSUPPORTED_FUNCTIONS` and
:func:`unsupported_reason`): native histograms (and their ``</`` ``>/``
trim operators), duration expressions, ``fill`` modifiers, the
``anchored``/``smoothed`` range selectors and start timestamps (``@st``
load lines, ``start_timestamp()``). Features soulwatch has behind
Prometheus's flags (delayed name removal, type-and-unit labels) are run,
and fail unless the engine was built with them.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from soulwatch.exceptions import ParseError, SoulwatchError
from soulwatch.promql import ast
from soulwatch.promql.parser import parse
from soulwatch.promql.testscript import (
    ClearCommand,
    EvalCommand,
    LoadCommand,
    Point,
    parse_script,
)
from soulwatch.promql.values import QueryEngine, QueryResult, Sample, Scalar, String
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Series, matches_all
from soulwatch.tsdb.storage import Storage

__all__ = [
    "EPSILON",
    "UNSUPPORTED_FUNCTIONS",
    "CaseResult",
    "EngineFactory",
    "FileReport",
    "Outcome",
    "almost_equal",
    "parse_script",
    "run_file",
    "run_script",
    "unsupported_reason",
]

EngineFactory = Callable[[Storage], QueryEngine]

#: Relative tolerance for float comparison, as in Prometheus's runner.
EPSILON = 1e-6

#: Functions out of scope, with the category a case using them is counted in.
UNSUPPORTED_FUNCTIONS: dict[str, str] = {
    "histogram_avg": "native histograms",
    "histogram_count": "native histograms",
    "histogram_sum": "native histograms",
    "histogram_stddev": "native histograms",
    "histogram_stdvar": "native histograms",
}

# Functions whose result depends on the evaluation time even when their
# arguments are pinned with @, so the @-variants of a case skip them
# (Prometheus's AtModifierUnsafeFunctions).
_AT_UNSAFE_FUNCTIONS = frozenset(
    (
        *("days_in_month", "day_of_month", "day_of_week", "day_of_year"),
        *("hour", "minute", "month", "year", "predict_linear", "time", "timestamp"),
    )
)
_DURATION_FUNCTIONS = re.compile(r"\b(?:step|range|min_of|max_of)\s*\(", re.IGNORECASE)
_BARE_START_END = re.compile(r"(?<![@\s])\s*\b(?:start|end)\s*\(\s*\)")
_FILL = re.compile(r"\bfill(?:_left|_right)?\s*\(")
# Prometheus's promql-extended-range-selectors: "x[1m] anchored", "x[1m] smoothed".
_EXTENDED_RANGE = re.compile(r"\b(?:anchored|smoothed)\b")
# The native-histogram trim operators "</" and ">/".
_TRIM = re.compile(r"[<>]/")
# start_timestamp() reads the start times that "@st" load lines give (use-start-timestamps).
_START_TIMESTAMP = re.compile(r"\bstart_timestamp\s*\(")
_STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')


class Outcome(Enum):
    """What happened to one case."""

    PASSED = "passed"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True)
class CaseResult:
    """One ``eval`` case: its place, query, outcome and, if not passed, why."""

    file: str
    line: int
    query: str
    outcome: Outcome
    reason: str = ""
    expected: str = ""
    got: str = ""


@dataclass
class FileReport:
    """The results of one script."""

    file: str
    cases: list[CaseResult] = field(default_factory=list)

    def count(self, outcome: Outcome) -> int:
        """How many cases had ``outcome``."""
        return sum(1 for case in self.cases if case.outcome is outcome)

    @property
    def passed(self) -> int:
        """Cases that passed."""
        return self.count(Outcome.PASSED)

    @property
    def failed(self) -> int:
        """Cases that failed."""
        return self.count(Outcome.FAILED)

    @property
    def unsupported(self) -> int:
        """Cases that need a feature out of scope."""
        return self.count(Outcome.UNSUPPORTED)

    def failures(self) -> list[CaseResult]:
        """The failed cases, in file order."""
        return [case for case in self.cases if case.outcome is Outcome.FAILED]


# -- running ------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The times a result's points are expected at."""

    start_ms: int
    end_ms: int
    step_ms: int


class _CaseFailure(Exception):
    def __init__(self, reason: str, expected: str = "", got: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected
        self.got = got


def run_file(path: Path, engine_factory: EngineFactory) -> FileReport:
    """Run the script at ``path``; see :func:`run_script`."""
    return run_script(path.read_text(encoding="utf-8"), engine_factory, file=str(path))


def run_script(text: str, engine_factory: EngineFactory, *, file: str = "<script>") -> FileReport:
    """Run every case of a script on a fresh storage and engine.

    ``engine_factory`` builds the engine over the storage the script loads
    (for soulwatch: ``soulwatch.promql.engine.Engine``). Raises
    :class:`~soulwatch.exceptions.ConfigError` if the script is malformed.
    """
    commands = parse_script(text, file)
    storage = MemoryStorage()
    engine = engine_factory(storage)
    histogram_series: list[Labels] = []
    start_timestamp_series: list[Labels] = []
    report = FileReport(file)
    for cmd in commands:
        if isinstance(cmd, ClearCommand):
            storage.clear()
            histogram_series.clear()
            start_timestamp_series.clear()
        elif isinstance(cmd, LoadCommand):
            histogram_series.extend(_load(storage, cmd))
            start_timestamp_series.extend(cmd.start_timestamps)
        else:
            report.cases.append(
                _run_case(engine, cmd, file, histogram_series, start_timestamp_series)
            )
    return report


def _load(storage: MemoryStorage, cmd: LoadCommand) -> list[Labels]:
    """Append a load block's float samples; return the series that hold native histograms."""
    histograms: list[Labels] = []
    for labels, points in cmd.series:
        if any(p.histogram for p in points):
            histograms.append(labels)
        for index, point in enumerate(points):
            if not point.omitted and not point.histogram:
                storage.add(labels, index * cmd.step_ms, point.value)
        if cmd.nhcb and labels.name.endswith("_bucket"):
            # load_with_nhcb also stores each classic histogram as a native one.
            histograms.append(labels.without("le").with_(__name__=labels.name[: -len("_bucket")]))
    return histograms


def unsupported_reason(
    query: str,
    histogram_series: list[Labels] | None = None,
    start_timestamp_series: list[Labels] | None = None,
) -> str | None:
    """Why a case is out of scope, or ``None`` if soulwatch should support it."""
    code = _STRING_LITERAL.sub('""', query)
    if _FILL.search(code):
        return "fill modifiers"
    if _EXTENDED_RANGE.search(code):
        return "extended range selectors"
    if _TRIM.search(code):
        return "native histograms"
    if _START_TIMESTAMP.search(code):
        return "start timestamps"
    if _DURATION_FUNCTIONS.search(code) or _BARE_START_END.search(code):
        return "duration expressions"
    if re.search(r"\[[^\]]*[-+*/%^(][^\]]*\]", code) or re.search(r"\boffset\s*\(", code):
        return "duration expressions"
    try:
        expr = parse(query)
    except ParseError:
        return None  # a syntax error is the case's business (expect fail or a failure)
    for node in _walk(expr):
        if isinstance(node, ast.Call) and node.func in UNSUPPORTED_FUNCTIONS:
            return UNSUPPORTED_FUNCTIONS[node.func]
        if isinstance(node, ast.VectorSelector) and any(
            matches_all(node.matchers, labels) for labels in histogram_series or ()
        ):
            return "native histograms"
        if isinstance(node, ast.VectorSelector) and any(
            matches_all(node.matchers, labels) for labels in start_timestamp_series or ()
        ):
            return "start timestamps"
    return None


def _walk(expr: ast.Expr) -> Iterator[ast.Expr]:
    yield expr
    for child in _children(expr):
        yield from _walk(child)


def _children(expr: ast.Expr) -> tuple[ast.Expr, ...]:
    if isinstance(expr, ast.MatrixSelector):
        return (expr.selector,)
    if isinstance(expr, ast.SubqueryExpr | ast.ParenExpr | ast.UnaryExpr):
        return (expr.expr,)
    if isinstance(expr, ast.BinaryExpr):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, ast.AggregateExpr):
        return (expr.expr,) if expr.param is None else (expr.param, expr.expr)
    if isinstance(expr, ast.Call):
        return expr.args
    return ()


def _run_case(
    engine: QueryEngine,
    cmd: EvalCommand,
    file: str,
    histogram_series: list[Labels],
    start_timestamp_series: list[Labels],
) -> CaseResult:
    reason = unsupported_reason(cmd.query, histogram_series, start_timestamp_series)
    if reason is None and cmd.histogram_expected:
        reason = "native histograms"
    if reason is not None:
        return CaseResult(file, cmd.line, cmd.query, Outcome.UNSUPPORTED, reason)
    try:
        if cmd.is_range:
            _check_range(engine, cmd)
        else:
            _check_instant(engine, cmd)
    except _CaseFailure as failure:
        return CaseResult(
            file,
            cmd.line,
            cmd.query,
            Outcome.FAILED,
            failure.reason,
            failure.expected,
            failure.got,
        )
    return CaseResult(file, cmd.line, cmd.query, Outcome.PASSED)


def _execute(
    cmd: EvalCommand, run: Callable[[], QueryResult], mode: str = ""
) -> QueryResult | None:
    """Run a query; ``None`` if it failed as the case expects."""
    try:
        result = run()
    except SoulwatchError as exc:
        if not cmd.has("fail"):
            raise _CaseFailure(f"unexpected error{mode}: {exc}", "a result", str(exc)) from None
        for expect in cmd.of("fail"):
            if not expect.matches(str(exc)):
                raise _CaseFailure(
                    f"error does not match expected {expect.describe()}",
                    expect.message or (expect.pattern.pattern if expect.pattern else ""),
                    str(exc),
                ) from None
        return None
    except Exception as exc:  # an engine crash is a failure of this case, not of the run
        raise _CaseFailure(f"engine crashed{mode}: {exc!r}", "a result", repr(exc)) from exc
    if cmd.has("fail"):
        raise _CaseFailure("expected an error but the query succeeded", "an error", "a result")
    _check_annotations(cmd, result)
    return result


def _check_annotations(cmd: EvalCommand, result: QueryResult) -> None:
    for kind, actual in (("warn", result.warnings), ("info", result.infos)):
        expects = cmd.of(kind)
        if expects:
            if not actual:
                raise _CaseFailure(f"expected {kind} annotations but got none", kind, "none")
            for expect in expects:
                if not any(expect.matches(a) for a in actual):
                    raise _CaseFailure(
                        f"no {kind} annotation matches {expect.describe()}",
                        expect.describe(),
                        "; ".join(actual),
                    )
            for annotation in actual:
                if not any(e.matches(annotation) for e in expects):
                    raise _CaseFailure(f"unexpected {kind} annotation", "none", annotation)
        if cmd.has(f"no_{kind}") and actual:
            raise _CaseFailure(f"unexpected {kind} annotations", "none", "; ".join(actual))


def _check_range(engine: QueryEngine, cmd: EvalCommand) -> None:
    result = _execute(cmd, lambda: engine.range(cmd.query, cmd.start_ms, cmd.end_ms, cmd.step_ms))
    if result is None:
        return
    _compare(cmd, result, _Window(cmd.start_ms, cmd.end_ms, cmd.step_ms))


def _check_instant(engine: QueryEngine, cmd: EvalCommand) -> None:
    result = _execute(cmd, lambda: engine.instant(cmd.query, cmd.start_ms))
    if result is None:
        return
    if cmd.range_vector is not None:
        _compare(cmd, result, _Window(*cmd.range_vector))
        return
    _compare(cmd, result, _Window(cmd.start_ms, cmd.start_ms, 0))
    if cmd.expected_string is not None or isinstance(result.value, String):
        return
    variants = _at_variants(cmd.query, cmd.start_ms)
    for expr, t_ms in variants:
        res = _execute(cmd, lambda e=expr, t=t_ms: engine.instant(e, t), f" with @ at t={t_ms}ms")  # type: ignore[misc]
        if res is not None:
            _compare(cmd, res, _Window(t_ms, t_ms, 0), f" (with @ {cmd.start_ms}ms at t={t_ms}ms)")
    if "range()" in cmd.query or cmd.has("ordered"):
        return
    # Like Prometheus: the same query in range mode must agree at the middle step.
    t = cmd.start_ms
    ranged = _execute(
        cmd, lambda: engine.range(cmd.query, t - 60_000, t + 60_000, 60_000), " in range mode"
    )
    if ranged is None:
        return
    _check_sorted(ranged)
    middle = [
        Sample(series.labels, ts, v) for series in _matrix(ranged) for ts, v in series if ts == t
    ]
    if isinstance(result.value, Scalar):
        if not middle:
            raise _CaseFailure("range mode returned no value at the instant", "a scalar", "nothing")
        ranged_result = QueryResult(Scalar(t, middle[0].value))
    else:
        ranged_result = QueryResult(middle)
    _compare(cmd, ranged_result, _Window(t, t, 0), " (range mode)")


def _at_variants(query: str, t_ms: int) -> list[tuple[ast.Expr, int]]:
    """The query with ``@ t`` on every selector, evaluated at other times (as Prometheus does)."""
    expr = parse(query)
    if any(isinstance(n, ast.Call) and n.func in _AT_UNSAFE_FUNCTIONS for n in _walk(expr)):
        return []
    pinned = _pin(expr, ast.At(ast.AtKind.TIMESTAMP, t_ms))
    times = [-1000, 0, 1000] if t_ms == 0 else [-10 * t_ms, 0, t_ms // 5, t_ms, 10 * t_ms]
    return [(pinned, t) for t in times]


def _pin(expr: ast.Expr, at: ast.At) -> ast.Expr:
    if isinstance(expr, ast.VectorSelector):
        return expr if expr.at is not None else replace(expr, at=at)
    if isinstance(expr, ast.MatrixSelector):
        selector = expr.selector
        return replace(expr, selector=selector if selector.at else replace(selector, at=at))
    if isinstance(expr, ast.SubqueryExpr):
        # Selectors inside a pinned subquery keep their own times.
        return expr if expr.at is not None else replace(expr, at=at)
    if isinstance(expr, ast.ParenExpr | ast.UnaryExpr):
        return replace(expr, expr=_pin(expr.expr, at))
    if isinstance(expr, ast.BinaryExpr):
        return replace(expr, lhs=_pin(expr.lhs, at), rhs=_pin(expr.rhs, at))
    if isinstance(expr, ast.AggregateExpr):
        param = None if expr.param is None else _pin(expr.param, at)
        return replace(expr, expr=_pin(expr.expr, at), param=param)
    if isinstance(expr, ast.Call):
        return replace(expr, args=tuple(_pin(a, at) for a in expr.args))
    return expr


def _matrix(result: QueryResult) -> list[Series]:
    value = result.value
    if isinstance(value, Scalar | String):
        raise _CaseFailure("expected a matrix", "matrix", _show_value(result))
    return [s for s in value if isinstance(s, Series)]


def _check_sorted(result: QueryResult) -> None:
    series = _matrix(result)
    for a, b in itertools.pairwise(series):
        if tuple(a.labels) > tuple(b.labels):
            raise _CaseFailure(
                "matrix results must be sorted by labels", "sorted", f"{a.labels} before {b.labels}"
            )


def _compare(cmd: EvalCommand, result: QueryResult, window: _Window, mode: str = "") -> None:
    value = result.value
    if cmd.expected_string is not None:
        if not isinstance(value, String) or value.value != cmd.expected_string:
            raise _CaseFailure(
                f"string mismatch{mode}", repr(cmd.expected_string), _show_value(result)
            )
        return
    if isinstance(value, String):
        raise _CaseFailure(
            f"unexpected string result{mode}", _show_expected(cmd), repr(value.value)
        )
    if isinstance(value, Scalar):
        if not cmd.expect_scalar:
            raise _CaseFailure(
                f"expected a vector or matrix{mode}", _show_expected(cmd), _show_value(result)
            )
        if not almost_equal(cmd.expected[0][1][0].value, value.value):
            raise _CaseFailure(f"scalar mismatch{mode}", _show_expected(cmd), _show_value(result))
        return
    if cmd.expect_scalar:
        raise _CaseFailure(f"expected a scalar{mode}", _show_expected(cmd), _show_value(result))
    expected = {labels: (points, pos) for labels, points, pos in cmd.expected if labels is not None}
    if (value and isinstance(value[0], Series)) or result.result_type == "matrix":
        _compare_matrix(cmd, result, expected, window, mode)
        return
    samples = [s for s in value if isinstance(s, Sample)]
    ordered = cmd.has("ordered")
    seen: set[Labels] = set()
    for index, sample in enumerate(samples):
        entry = expected.get(sample.labels)
        if entry is None:
            raise _CaseFailure(
                f"unexpected series {sample.labels}{mode}", _show_expected(cmd), _show_value(result)
            )
        points, pos = entry
        if ordered and pos != index + 1:
            raise _CaseFailure(
                f"series {sample.labels} at position {index + 1}, expected {pos}{mode}",
                _show_expected(cmd),
                _show_value(result),
            )
        if not almost_equal(points[0].value, sample.value):
            raise _CaseFailure(
                f"value mismatch for {sample.labels}{mode}",
                _show_expected(cmd),
                _show_value(result),
            )
        seen.add(sample.labels)
    missing = [labels for labels in expected if labels not in seen]
    if missing:
        raise _CaseFailure(
            f"expected series {missing[0]} not found{mode}",
            _show_expected(cmd),
            _show_value(result),
        )


def _compare_matrix(
    cmd: EvalCommand,
    result: QueryResult,
    expected: dict[Labels, tuple[list[Point], int]],
    window: _Window,
    mode: str,
) -> None:
    start, end, step = window.start_ms, window.end_ms, window.step_ms
    matrix = _matrix(result)
    if cmd.has("ordered"):
        raise _CaseFailure("expected ordered result, but the query returned a matrix")
    _check_sorted(result)
    seen: set[Labels] = set()
    for series in matrix:
        entry = expected.get(series.labels)
        if entry is None:
            raise _CaseFailure(
                f"unexpected series {series.labels}{mode}", _show_expected(cmd), _show_value(result)
            )
        want = [(start + i * step, p.value) for i, p in enumerate(entry[0]) if not p.omitted]
        if len(entry[0]) > 1 and start + (len(entry[0]) - 1) * step > end:
            raise _CaseFailure(f"more expected points than the range has for {series.labels}")
        got = list(series)
        if len(want) != len(got) or any(
            wt != gt or not almost_equal(wv, gv)
            for (wt, wv), (gt, gv) in zip(want, got, strict=False)
        ):
            raise _CaseFailure(
                f"points mismatch for {series.labels}{mode}",
                _show_expected(cmd),
                _show_value(result),
            )
        seen.add(series.labels)
    missing = [labels for labels in expected if labels not in seen]
    if missing:
        raise _CaseFailure(
            f"expected series {missing[0]} not found{mode}",
            _show_expected(cmd),
            _show_value(result),
        )


def almost_equal(a: float, b: float, epsilon: float = EPSILON) -> bool:
    """Prometheus's float comparison: equal, both NaN, or within relative ``epsilon``."""
    if a == b:
        return True
    if math.isnan(a) and math.isnan(b):
        return True
    if math.isnan(a) or math.isnan(b) or math.isinf(a) or math.isinf(b):
        return False
    min_normal = 2.2250738585072014e-308
    diff = abs(a - b)
    abs_sum = abs(a) + abs(b)
    if a == 0 or b == 0 or abs_sum < min_normal:
        return diff < epsilon * min_normal
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if value != int(value) or abs(value) >= 1e15 else str(int(value))


def _show_expected(cmd: EvalCommand) -> str:
    if cmd.expected_string is not None:
        return repr(cmd.expected_string)
    if not cmd.expected:
        return "(empty)"
    parts = []
    for labels, points, _ in cmd.expected:
        shown = " ".join("_" if p.omitted else _fmt(p.value) for p in points)
        parts.append(shown if labels is None else f"{labels} {shown}")
    return "; ".join(parts)


def _show_value(result: QueryResult) -> str:
    value = result.value
    if isinstance(value, Scalar):
        return _fmt(value.value)
    if isinstance(value, String):
        return repr(value.value)
    if not value:
        return "(empty)"
    parts = []
    for item in value:
        if isinstance(item, Sample):
            parts.append(f"{item.labels} {_fmt(item.value)}")
        else:
            points = " ".join(f"{_fmt(v)}@{t / 1000:g}s" for t, v in item)
            parts.append(f"{item.labels} {points}")
    return "; ".join(parts)
