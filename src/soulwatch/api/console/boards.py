"""Boards: panels of PromQL with units and thresholds, defined in YAML.

A board is data, not code: the Soulcaster preset ships one
(``presets/soulcaster/boards/soulcaster.yml``), users write their own and list
them under ``console.boards``. Rows are components, ``columns`` (optional)
are the signals each row's panels sit under, so the grid lines up as
"component × golden signal". A panel's ``alert`` labels tie it to alerts:
its tile turns red while a firing alert carries all of them.

:func:`grafana_dashboard` turns a board into a Grafana dashboard JSON (stat
panels with sparklines, the same queries, units and thresholds), for teams
that also run Grafana against soulwatch's Prometheus API.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from soulwatch.config_loading import load_yaml, validation_error
from soulwatch.duration import Duration, format_duration
from soulwatch.exceptions import ConfigError, ParseError

#: Units a panel may declare; the names are Grafana's unit ids.
Unit = Literal["short", "s", "percentunit", "reqps", "reqpm", "bytes", "bool", "h"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Thresholds(_Model):
    """When a value is worth a colour: ``warn`` (amber) and ``crit`` (red)."""

    warn: float | None = None
    crit: float | None = None
    #: ``below``: low values are bad (availability, ``up``).
    direction: Literal["above", "below"] = "above"

    def level(self, value: float) -> Literal["ok", "warn", "crit"]:
        """Which band ``value`` falls in."""

        def past(limit: float | None) -> bool:
            if limit is None:
                return False
            return value > limit if self.direction == "above" else value < limit

        if past(self.crit):
            return "crit"
        if past(self.warn):
            return "warn"
        return "ok"


class Panel(_Model):
    """One tile: a PromQL query reduced to one number, with its sparkline."""

    title: str = Field(min_length=1)
    expr: str = Field(min_length=1)
    unit: Unit = "short"
    column: str | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    #: Labels a firing alert must carry to colour this tile (e.g. ``{alertname: BackendDown}``).
    alert: dict[str, str] = Field(default_factory=dict)
    description: str = ""


class Row(_Model):
    """A component: a title and its panels."""

    title: str = Field(min_length=1)
    panels: list[Panel] = Field(default_factory=list)


class Board(_Model):
    """A board as written in YAML."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = Field(min_length=1)
    description: str = ""
    #: How often the console refreshes the board (the Grafana dashboard too).
    refresh: Duration = 15.0
    #: How much history the sparklines show.
    range: Duration = 3 * 3600.0
    columns: list[str] = Field(default_factory=list)
    rows: list[Row] = Field(default_factory=list)

    def cells(self, row: Row) -> list[Panel | None]:
        """``row``'s panels laid out under :attr:`columns` (``None`` where a row has none)."""
        if not self.columns:
            return list(row.panels)
        by_column = {p.column: p for p in row.panels}
        return [by_column.get(c) for c in self.columns]


def load_board(
    path: str | Path,
    *,
    validate_expr: Callable[[str], object] | None = None,
    environ: dict[str, str] | None = None,
) -> Board:
    """Read and validate one board file; errors name the file, line and column.

    ``validate_expr`` (the PromQL parser) checks every panel's query: a
    syntax error names the panel and where in its query it is.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read board: {exc.strerror}", file=str(path)) from None
    data, positions = load_yaml(text, str(path), dict(os.environ) if environ is None else environ)
    try:
        board = Board.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, Board, positions) from None
    if validate_expr is not None:
        for r, row in enumerate(board.rows):
            for p, panel in enumerate(row.panels):
                try:
                    validate_expr(panel.expr)
                except ParseError as exc:
                    where = ("rows", r, "panels", p, "expr")
                    message = f"panel {row.title} / {panel.title}: query {exc}"
                    raise positions.error(where, message) from None
    return board


def load_boards(
    paths: list[Path], *, validate_expr: Callable[[str], object] | None = None
) -> list[Board]:
    """Every board of ``paths``; a name used twice is an error."""
    boards: list[Board] = []
    seen: dict[str, Path] = {}
    for path in paths:
        board = load_board(path, validate_expr=validate_expr)
        if board.name in seen:
            raise ConfigError(
                f"board name {board.name!r} is already used by {seen[board.name]}", file=str(path)
            )
        seen[board.name] = path
        boards.append(board)
    return boards


def preset_board_path() -> Path:
    """The Soulcaster preset's board file."""
    presets = Path(__file__).resolve().parents[2] / "presets"
    return presets / "soulcaster" / "boards" / "soulcaster.yml"


# --- Grafana ----------------------------------------------------------------------

_GRAFANA_COLOURS = {"ok": "green", "warn": "orange", "crit": "red"}
_PANEL_H = 4


def _grafana_thresholds(t: Thresholds) -> dict[str, Any]:
    """Grafana's steps: a base colour, then a colour from each limit upwards."""
    if t.direction == "above":
        steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
        for level, limit in (("warn", t.warn), ("crit", t.crit)):
            if limit is not None:
                steps.append({"color": _GRAFANA_COLOURS[level], "value": limit})
        return {"mode": "absolute", "steps": steps}
    # Low values are bad: the base is the worst band, better ones start at each limit.
    limits = [(lvl, lim) for lvl, lim in (("crit", t.crit), ("warn", t.warn)) if lim is not None]
    colours = [_GRAFANA_COLOURS[lvl] for lvl, _ in limits] + ["green"]
    steps = [{"color": colours[0], "value": None}]
    steps += [{"color": colours[i + 1], "value": lim} for i, (_, lim) in enumerate(limits)]
    return {"mode": "absolute", "steps": steps}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def grafana_dashboard(board: Board) -> dict[str, Any]:
    """``board`` as a Grafana dashboard (import it with a Prometheus data source).

    Every row becomes a Grafana row; every panel a stat panel with a
    sparkline, the board's query, unit and thresholds. The data source is a
    dashboard variable, so the same JSON works against soulwatch or Prometheus.
    """
    datasource = {"type": "prometheus", "uid": "${datasource}"}
    # One grid column per board column: Grafana's grid is 24 units wide.
    across = len(board.columns) or max((len(r.panels) for r in board.rows), default=4)
    width = max(2, 24 // max(across, 1))
    panels: list[dict[str, Any]] = []
    next_id = 1
    y = 0
    for row in board.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        for cell in board.cells(row):
            if cell is not None:
                panels.append(
                    {
                        "id": next_id,
                        "type": "stat",
                        "title": cell.title,
                        "description": cell.description,
                        "datasource": datasource,
                        "targets": [{"refId": "A", "expr": cell.expr, "datasource": datasource}],
                        "fieldConfig": {
                            "defaults": {
                                "unit": cell.unit,
                                "thresholds": _grafana_thresholds(cell.thresholds),
                                "color": {"mode": "thresholds"},
                            },
                            "overrides": [],
                        },
                        "options": {
                            "graphMode": "area",
                            "colorMode": "background",
                            "justifyMode": "auto",
                            "textMode": "value",
                            "reduceOptions": {
                                "calcs": ["lastNotNull"],
                                "fields": "",
                                "values": False,
                            },
                        },
                        "gridPos": {"h": _PANEL_H, "w": width, "x": x, "y": y},
                    }
                )
                next_id += 1
            x += width
            if x + width > 24:
                x = 0
                y += _PANEL_H
        if x != 0:
            y += _PANEL_H
    return {
        "uid": f"soulwatch-{board.name}"[:40],
        "title": board.title,
        "description": board.description,
        "tags": ["soulwatch", _slug(board.name)],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": format_duration(board.refresh),
        "time": {"from": f"now-{format_duration(board.range)}", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Data source",
                    "type": "datasource",
                    "query": "prometheus",
                    # No "current": Grafana selects the default Prometheus data source
                    # (its schema has no empty current option).
                    "hide": 0,
                }
            ]
        },
        "panels": panels,
    }


def grafana_json(board: Board) -> str:
    """:func:`grafana_dashboard` as the text the preset ships (sorted keys, two-space indent)."""
    return json.dumps(grafana_dashboard(board), indent=2, sort_keys=True) + "\n"
