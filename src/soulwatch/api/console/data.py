"""What each console page shows, computed from the API's views (no HTTP, no templates).

Everything here reads :class:`~soulwatch.api.context.ApiContext` only: the
same storage, engine and view Protocols the JSON API serves from.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from soulwatch.api.console.boards import Board, Panel
from soulwatch.api.console.format import sparkline, to_unix
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.exceptions import ParseError, QueryError
from soulwatch.promql.ast import FUNCTIONS
from soulwatch.promql.values import Sample, Scalar, String
from soulwatch.tsdb.model import Labels, Matcher, Series
from soulwatch.tsdb.storage import SeriesIndex

#: Points of a sparkline or an overview chart.
SPARK_POINTS = 60


@dataclass
class Tile:
    """One evaluated panel."""

    panel: Panel
    value: float | None = None
    points: list[tuple[float, float]] = field(default_factory=list)
    #: ``firing`` / ``pending`` (from alerts), else ``crit`` / ``warn`` / ``ok`` / ``nodata``.
    state: str = "nodata"
    alerts: list[JSONDict] = field(default_factory=list)
    error: str = ""
    spark: Any = ""

    @property
    def threshold(self) -> float | None:
        """The line drawn on the sparkline: ``crit``, else ``warn``."""
        t = self.panel.thresholds
        return t.crit if t.crit is not None else t.warn


def _last(series: Series) -> float | None:
    return next((v for v in reversed(series.values) if math.isfinite(v)), None)


def _worst(series: Sequence[Series], below: bool) -> Series | None:
    """The series whose last value is the worst (highest, or lowest when low is bad)."""
    best: tuple[float, Series] | None = None
    for s in series:
        last = _last(s)
        if last is None:
            continue
        key = -last if below else last
        if best is None or key > best[0]:
            best = (key, s)
    return best[1] if best else (series[0] if series else None)


def _range_ms(
    ctx: ApiContext,
    expr: str,
    window: tuple[int, int, int],
    cancel: threading.Event | None = None,
) -> list[Series]:
    start_ms, end_ms, step_ms = window
    value = ctx.engine.range(expr, start_ms, end_ms, step_ms, cancel=cancel).value
    if isinstance(value, Scalar | String):
        return []
    return [s for s in value if isinstance(s, Series)]


#: Series a sparkline cache keeps per panel (a panel should aggregate to one).
MAX_CACHED_SERIES = 50


@dataclass
class _Cached:
    expr: str
    step_ms: int
    end_ms: int
    points: dict[Labels, dict[int, float]]


class SparkCache:
    """Sparkline points of every panel, on step-aligned instants, kept between refreshes.

    A sparkline's past does not change: a refresh evaluates only the steps
    that are new since the last one (usually none or one) plus an instant
    query for the current value, instead of the whole range again. One lock
    serialises evaluations, so many viewers share one computation.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._panels: dict[tuple[str, int], _Cached] = {}

    def series(
        self,
        ctx: ApiContext,
        key: tuple[str, int],
        expr: str,
        window: tuple[int, int, int],
        cancel: threading.Event | None = None,
    ) -> list[Series]:
        """The panel's series on the aligned steps of ``window``: ``(start, end, step)`` ms."""
        start_ms, end_ms, step_ms = window
        entry = self._panels.get(key)
        if (
            entry is None
            or entry.expr != expr
            or entry.step_ms != step_ms
            or entry.end_ms < start_ms
        ):
            entry = _Cached(expr, step_ms, start_ms - step_ms, {})
        if entry.end_ms < end_ms:
            new = (entry.end_ms + step_ms, end_ms, step_ms)
            for s in _range_ms(ctx, expr, new, cancel):
                known = entry.points.get(s.labels)
                if known is None:
                    if len(entry.points) >= MAX_CACHED_SERIES:
                        continue
                    known = entry.points[s.labels] = {}
                known.update(zip(s.timestamps, s.values, strict=True))
            entry.end_ms = end_ms
        for labels in list(entry.points):
            kept = {t: v for t, v in entry.points[labels].items() if t >= start_ms}
            if kept:
                entry.points[labels] = kept
            else:
                del entry.points[labels]
        self._panels[key] = entry
        return [
            Series(labels, sorted(points), [points[t] for t in sorted(points)])
            for labels, points in entry.points.items()
        ]


def evaluate_board(
    ctx: ApiContext,
    board: Board,
    alerts: list[JSONDict],
    cache: SparkCache | None = None,
    *,
    history: bool = True,
    cancel: threading.Event | None = None,
) -> list[Tile]:
    """Every panel's current value, sparkline and state.

    The current value is an instant query at now; the sparkline is the same
    series over the board's range on step-aligned instants (from ``cache``
    when given), ending with the current value. Without ``history`` the
    sparklines are left out (only the current values: cheap, and without
    waiting for whoever computes the cache). Once ``cancel`` is set (nobody waits
    for the page any more), the remaining panels' queries stop at once.
    """
    if not history:
        return _evaluate(ctx, board, alerts, None, cancel)
    cache = cache or SparkCache()
    with cache.lock:
        return _evaluate(ctx, board, alerts, cache, cancel)


def _evaluate(
    ctx: ApiContext,
    board: Board,
    alerts: list[JSONDict],
    cache: SparkCache | None,
    cancel: threading.Event | None,
) -> list[Tile]:
    now = ctx.clock.time()
    now_ms = round(now * 1000)
    step_ms = max(1000, round(board.range / SPARK_POINTS * 1000))
    end_ms = now_ms // step_ms * step_ms
    start_ms = end_ms - round(board.range * 1000)
    tiles = []
    index = 0
    for row in board.rows:
        for panel in row.panels:
            window = (start_ms, end_ms, step_ms)
            key = (board.name, index)
            tile = _tile(
                ctx, cache, key, panel, alerts=alerts, window=window, now=now, cancel=cancel
            )
            tiles.append(tile)
            index += 1
    return tiles


def _tile(
    ctx: ApiContext,
    cache: SparkCache | None,
    key: tuple[str, int],
    panel: Panel,
    *,
    alerts: list[JSONDict],
    window: tuple[int, int, int],
    now: float,
    cancel: threading.Event | None = None,
) -> Tile:
    start_ms = window[0]
    tile = Tile(panel)
    below = panel.thresholds.direction == "below"
    try:
        current = ctx.engine.instant(panel.expr, round(now * 1000), cancel=cancel).value
        history = cache.series(ctx, key, panel.expr, window, cancel) if cache is not None else []
    except QueryError as exc:  # a ParseError names its line and column
        tile.error = str(exc)
        current, history = [], []
    if isinstance(current, Scalar):
        tile.value = current.value
        chosen = history[0] if history else None
    elif isinstance(current, list) and current:
        samples = [c for c in current if isinstance(c, Sample) and math.isfinite(c.value)]
        pick = max(samples, key=lambda c: -c.value if below else c.value, default=None)
        tile.value = pick.value if pick else None
        chosen = next((h for h in history if pick and h.labels == pick.labels), None)
    else:
        chosen = _worst(history, below)
    if chosen is not None:
        tile.points = [(t / 1000, v) for t, v in chosen]
    if tile.value is not None:
        tile.points.append((now, tile.value))
    tile.alerts = [a for a in alerts if panel.alert and _carries(a, panel.alert)]
    tile.state = _state(tile)
    tile.spark = sparkline(
        tile.points, start=start_ms / 1000, end=now, threshold=tile.threshold, label=panel.title
    )
    return tile


def _carries(alert: JSONDict, labels: dict[str, str]) -> bool:
    have = alert.get("labels", {})
    return all(have.get(k) == v for k, v in labels.items())


def _state(tile: Tile) -> str:
    states = {a.get("state") for a in tile.alerts}
    if "firing" in states:
        return "firing"
    if "pending" in states:
        return "pending"
    if tile.error:
        return "error"
    if tile.value is None or math.isnan(tile.value):
        return "nodata"
    return tile.panel.thresholds.level(tile.value)


# --- alert pages ----------------------------------------------------------------------

_COMPARISON = re.compile(r"(>=|<=|==|!=|>|<)\s*(bool\s+)?([-+]?[0-9.]+(?:e[-+]?[0-9]+)?)\s*$", re.I)
_SET_OPS = re.compile(r"\b(and|or|unless)\b")


def split_threshold(expr: str) -> tuple[str, float | None]:
    """The value part of an alert expression and its threshold (``X > 2`` -> ``X``, 2).

    Only the first operand of a top-level ``and`` / ``or`` / ``unless`` is
    considered (the rest are guards, such as a minimum traffic).
    """
    text = _top_level_head(expr).strip()
    match = _COMPARISON.search(text)
    if match is None or _depth_at(text, match.start()) != 0:
        return text, None
    try:
        return text[: match.start()].strip(), float(match.group(3))
    except ValueError:
        return text, None


def _top_level_head(expr: str) -> str:
    for m in _SET_OPS.finditer(expr):
        if _depth_at(expr, m.start()) == 0:
            return expr[: m.start()]
    return expr


def _depth_at(text: str, index: int) -> int:
    depth = 0
    quote = ""
    for ch in text[:index]:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
    return depth


def rule_of(ctx: ApiContext, alertname: str) -> JSONDict | None:
    """The alerting rule named ``alertname``."""
    if ctx.rules is None:
        return None
    for group in ctx.rules.rule_groups():
        for rule in group["rules"]:
            if rule.get("type") == "alerting" and rule["name"] == alertname:
                return {**rule, "group": group["name"]}
    return None


def chart_series(
    ctx: ApiContext,
    expr: str,
    start: float,
    end: float,
    *,
    points: int = 240,
    only: dict[str, str] | None = None,
    cancel: threading.Event | None = None,
) -> tuple[list[float], list[tuple[str, list[float | None]]]]:
    """Times and named value columns for a uPlot chart (``None`` where a series has no point).

    ``only``: keep the series whose labels all appear in it (an alert's own series).
    ``cancel``: stops the evaluation once set (nobody waits for the chart any more).
    """
    step_ms = max(round((end - start) / points * 1000), 1000)
    start_ms = round(start * 1000)
    end_ms = round(end * 1000)
    result = ctx.engine.range(expr, start_ms, end_ms, step_ms, cancel=cancel)
    value = result.value
    series = (
        [] if isinstance(value, Scalar | String) else [s for s in value if isinstance(s, Series)]
    )
    if only is not None:
        series = [
            s for s in series if all(only.get(k) == v for k, v in s.labels if k != "__name__")
        ]
    count = (end_ms - start_ms) // step_ms + 1
    times = [(start_ms + i * step_ms) / 1000 for i in range(count)]
    columns: list[tuple[str, list[float | None]]] = []
    for s in series[:20]:
        col: list[float | None] = [None] * count
        for ts, v in s:
            i, off = divmod(ts - start_ms, step_ms)
            if off == 0 and 0 <= i < count and math.isfinite(v):
                col[i] = v
        columns.append((series_name(s.labels.to_dict()), col))
    return times, columns


def series_name(labels: dict[str, str]) -> str:
    """``metric{a="b"}`` as Prometheus writes a series."""
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def episode_window(transitions: list[JSONDict], now: float) -> tuple[float, float]:
    """The time range a chart of an alert shows: its episode with some margin."""
    times = [to_unix(t["at"]) or now for t in transitions] or [now]
    first, last = min(times), max(times)
    margin = max(900.0, (last - first) / 4)
    return first - margin, min(now, last + margin) if last + margin > first else now


def transitions_of(history: list[JSONDict], labels: dict[str, str]) -> list[JSONDict]:
    """The transitions of the alert whose labels are ``labels``, oldest first."""
    return [t for t in reversed(history) if t.get("labels") == labels]


def parse_error_view(expr: str, exc: ParseError) -> dict[str, Any]:
    """The message and a caret under the position, line by line."""
    lines = expr.splitlines() or [expr]
    return {
        "message": str(exc),
        "line": exc.line,
        "column": exc.column,
        "lines": lines,
        "caret": " " * max(0, exc.column - 1) + "^",
    }


def episodes(
    history: list[JSONDict], since: float, acks: list[JSONDict] | None = None
) -> list[JSONDict]:
    """Episodes (first pending or firing to resolved) from transitions, newest first.

    An episode's acknowledgement is the first one of a group whose labels it
    carries, made while it was open.
    """
    by_fp: dict[str, list[JSONDict]] = {}
    for t in reversed(history):
        by_fp.setdefault(t["fingerprint"], []).append(t)
    out: list[JSONDict] = []
    for fp, transitions in by_fp.items():
        current: JSONDict | None = None
        for t in transitions:
            at = to_unix(t["at"]) or 0.0
            if current is None and t["to"] in ("pending", "firing"):
                current = {
                    "fingerprint": fp,
                    "labels": t["labels"],
                    "started": at,
                    "fired": at if t["to"] == "firing" else None,
                    "resolved": None,
                }
            elif current is not None and t["to"] == "firing" and current["fired"] is None:
                current["fired"] = at
            elif current is not None and t["to"] == "inactive":
                current["resolved"] = at
                out.append(current)
                current = None
        if current is not None:
            out.append(current)
    out = [i for i in out if (i["resolved"] or math.inf) >= since]
    for i in out:
        end = i["resolved"]
        i["duration"] = (end - i["started"]) if end else None
        i["ack"] = next(
            (
                a
                for a in acks or []
                if i["started"] <= (to_unix(a["at"]) or 0.0) <= (end or math.inf)
                and all(i["labels"].get(k) == v for k, v in a["labels"].items())
            ),
            None,
        )
    out.sort(key=lambda i: i["started"], reverse=True)
    return out


def completions(index: SeriesIndex, before: str) -> list[str]:
    """Explore's suggestions for the text before the cursor: metric and function
    names, label names inside braces, label values after ``name="``."""
    inside = re.search(r"([a-zA-Z_:][\w:]*)?\{([^{}]*)$", before)
    if inside:
        metric = inside.group(1) or ""
        matchers = []
        if metric:
            matchers = [Matcher.equal("__name__", metric)]
        value = re.search(r"([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*\"([^\"]*)$", inside.group(2))
        if value:
            values = index.label_values(value.group(1), matchers)
            return [v for v in values if v.startswith(value.group(3))]
        word = re.search(r"([a-zA-Z_]\w*)?$", inside.group(2))
        prefix = word.group(1) or "" if word else ""
        names = index.label_names(matchers)
        return [n for n in names if n.startswith(prefix) and n != "__name__"]
    word = re.search(r"([a-zA-Z_:][\w:]*)$", before)
    prefix = word.group(1) if word else ""
    if not prefix:
        return []
    metrics = [m for m in index.label_values("__name__") if m.startswith(prefix)]
    funcs = [f"{f}(" for f in sorted(FUNCTIONS) if f.startswith(prefix)]
    return metrics[:40] + funcs[:10]
