"""Boards: the preset's board, its Grafana twin, and errors that point at the line."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from soulwatch.api.console.boards import (
    Thresholds,
    grafana_dashboard,
    grafana_json,
    load_board,
    preset_board_path,
)
from soulwatch.api.console.data import split_threshold
from soulwatch.exceptions import ConfigError
from soulwatch.promql.parser import parse
from soulwatch.rules.loader import load_rule_files
from tests.helpers import soulwatch_command, subprocess_env

PRESET = preset_board_path().parent.parent


def test_the_preset_board_covers_the_seed_components_and_its_alerts_exist() -> None:
    board = load_board(preset_board_path(), validate_expr=parse)
    assert [r.title for r in board.rows] == [
        "Backend", "Dashboard", "Dashboard (real users)", "Agent runner", "Redis (Upstash)",
        "Reddit poller", "E2B",
    ]  # fmt: skip
    assert board.columns == ["availability", "latency", "errors", "traffic", "saturation"]
    rules = load_rule_files(sorted((PRESET / "rules").glob("*.yml")), validate_expr=parse)
    alertnames = {r.name for g in rules for r in g.rules if r.is_alert}
    for row in board.rows:
        for panel in row.panels:
            assert panel.column in board.columns, panel.title
            if panel.alert:
                assert panel.alert["alertname"] in alertnames, (row.title, panel.title)


def test_the_shipped_grafana_dashboard_is_the_board_exported() -> None:
    board = load_board(preset_board_path(), validate_expr=parse)
    shipped = (preset_board_path().parent / "soulcaster.grafana.json").read_text()
    assert shipped == grafana_json(board), "regenerate: soulwatch boards export grafana ..."
    dashboard = json.loads(shipped)
    stats = [p for p in dashboard["panels"] if p["type"] == "stat"]
    assert len(stats) == sum(len(r.panels) for r in board.rows)
    assert {p["targets"][0]["expr"] for p in stats} == {
        p.expr for r in board.rows for p in r.panels
    }
    # Panels stay on Grafana's 24-unit grid.
    assert all(p["gridPos"]["x"] + p["gridPos"]["w"] <= 24 for p in dashboard["panels"])


def test_grafana_thresholds_follow_the_direction() -> None:
    up = grafana_dashboard(load_board(preset_board_path()))["panels"][1]
    assert up["title"] == "/health probe"
    assert up["fieldConfig"]["defaults"]["thresholds"]["steps"] == [
        {"color": "red", "value": None},
        {"color": "green", "value": 1.0},
    ]
    assert Thresholds(warn=1, crit=2).level(1.5) == "warn"
    assert Thresholds(warn=0.99, crit=0.95, direction="below").level(0.9) == "crit"


def test_the_cli_exports_the_same_json(tmp_path: Path) -> None:
    out = tmp_path / "dash.json"
    proc = subprocess.run(
        soulwatch_command("boards", "export", "grafana", str(preset_board_path()), "-o", str(out)),
        capture_output=True, text=True, env=subprocess_env(), check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == grafana_json(load_board(preset_board_path()))


def test_a_malformed_query_in_a_board_names_the_line_and_the_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        "name: bad\ntitle: Bad\nrows:\n  - title: api\n    panels:\n"
        "      - title: errors\n        expr: sum(rate(x[5m])\n"
    )
    with pytest.raises(ConfigError) as err:
        load_board(path, validate_expr=parse)
    message = str(err.value)
    assert str(path) in message
    assert ":7:" in message  # the line of the expr
    assert "panel api / errors" in message
    assert "parse error" in message


def test_an_unknown_setting_is_named_with_a_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "typo.yml"
    path.write_text("name: t\ntitle: T\nrefesh: 5s\n")
    with pytest.raises(ConfigError, match=r"unknown setting 'refesh'.*did you mean 'refresh'"):
        load_board(path)


@pytest.mark.parametrize(
    ("expr", "value", "threshold"),
    [
        ("up == 0", "up", 0.0),
        ('p{job="x"} == 0 or absent(p{job="x"})', 'p{job="x"}', 0.0),
        ("(a / b) > 0.05 and on (job) c >= 0.1", "(a / b)", 0.05),
        ("max(rate(h[5m])) > 2", "max(rate(h[5m]))", 2.0),
        ("vector(1)", "vector(1)", None),
        ('x{l=">3"}', 'x{l=">3"}', None),
    ],
)  # fmt: skip
def test_split_threshold(expr: str, value: str, threshold: float | None) -> None:
    assert split_threshold(expr) == (value, threshold)
