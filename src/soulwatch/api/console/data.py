"""What each console page shows, computed from the API's views (no HTTP, no templates).

Everything here reads :class:`~soulwatch.api.context.ApiContext` only: the
same storage, engine and view Protocols the JSON API serves from.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from soulwatch.api.console.boards import Board, Panel
from soulwatch.api.console.format import sparkline, to_unix
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.exceptions import ParseError, QueryError
from soulwatch.promql.values import Scalar, String
from soulwatch.tsdb.model import Series

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


def _worst(series: Sequence[Series], below: bool) -> Series | None:
    """The series whose last value is the worst (highest, or lowest when low is bad)."""
    best: tuple[float, Series] | None = None
    for s in series:
        last = next((v for v in reversed(s.values) if math.isfinite(v)), None)
        if last is None:
            continue
        key = -last if below else last
        if best is None or key > best[0]:
            best = (key, s)
    return best[1] if best else (series[0] if series else None)


def range_points(ctx: ApiContext, expr: str, start: float, end: float, step: float) -> list[Series]:
    """A range query as series (a scalar result becomes one unlabelled series)."""
    step_ms = max(1, round(step * 1000))
    result = ctx.engine.range(expr, round(start * 1000), round(end * 1000), step_ms)
    value = result.value
    if isinstance(value, Scalar | String):
        return []
    return [s for s in value if isinstance(s, Series)]


def evaluate_board(ctx: ApiContext, board: Board, alerts: list[JSONDict]) -> list[Tile]:
    """Every panel's last value, sparkline and state (runs the board's queries)."""
    now = ctx.clock.time()
    step = board.range / SPARK_POINTS
    # Ending now: the last point is the tile's current value.
    end = now
    start = end - board.range
    tiles = []
    for row in board.rows:
        for panel in row.panels:
            tile = Tile(panel)
            below = panel.thresholds.direction == "below"
            try:
                worst = _worst(range_points(ctx, panel.expr, start, end, step), below)
            except ParseError as exc:
                tile.error = f"parse error at {exc.line}:{exc.column}: {exc}"
                worst = None
            except QueryError as exc:
                tile.error = str(exc)
                worst = None
            if worst is not None:
                tile.points = [(t / 1000, v) for t, v in worst]
                if worst.timestamps and worst.timestamps[-1] / 1000 >= end - step:
                    tile.value = worst.values[-1]
            tile.alerts = [a for a in alerts if panel.alert and _carries(a, panel.alert)]
            tile.state = _state(tile)
            tile.spark = sparkline(
                tile.points, start=start, end=end, threshold=tile.threshold, label=panel.title
            )
            tiles.append(tile)
    return tiles


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
) -> tuple[list[float], list[tuple[str, list[float | None]]]]:
    """Times and named value columns for a uPlot chart (``None`` where a series has no point).

    ``only``: keep the series whose labels all appear in it (an alert's own series).
    """
    step_ms = max(round((end - start) / points * 1000), 1000)
    start_ms = round(start * 1000)
    end_ms = round(end * 1000)
    result = ctx.engine.range(expr, start_ms, end_ms, step_ms)
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
