"""``soulwatch check rules --target prometheus-2``: warnings where an older Prometheus fails.

Every construct warned about is checked against Debian's ``promtool``
(Prometheus 2.42), which must refuse a rule file holding it; rules that get
no warning must load there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from soulwatch.exceptions import ParseError
from soulwatch.promql.parser import parse
from soulwatch.promql.portability import prometheus2_incompatibilities
from soulwatch.rules.loader import check_portability, check_rule_file
from tests.helpers import need_binary, soulwatch_command, subprocess_env

# (expression, start of the warning, column of the warning)
NEWER: list[tuple[str, str, int]] = [
    ('sort_by_label(up, "job")', "function sort_by_label() is experimental in Prometheus 2.49+", 1),
    ("mad_over_time(up[5m])", "function mad_over_time() is experimental", 1),
    ("limitk(2, up)", "aggregation limitk is experimental in Prometheus 2.54+", 1),
    (
        "double_exponential_smoothing(up[5m], 0.1, 0.5)",
        "function double_exponential_smoothing()",
        1,
    ),
    ("first_over_time(up[5m])", "function first_over_time() is not in Prometheus 2.x", 1),
    ("info(up)", "function info() is experimental in Prometheus 2.55+", 1),
    ('{"my.metric"}', "quoted metric and label names need Prometheus 3", 2),
    ('up{"a.b"="c"}', "quoted metric and label names", 4),
    ('sum by ("a.b") (up)', "quoted metric and label names", 9),
    ("up @ 100s", "a duration after @", 6),
    ("up[300]", "a number used as a duration", 4),
    ("up offset 60", "a number used as a duration", 11),
    ("predict_linear(up[5m], 1h)", "a duration used as a number", 24),
    ("time() - up > 10m", "a duration used as a number", 15),
]
PORTABLE = [
    "sum by (job) (rate(up[5m:1m]))",
    "up @ 100",
    "histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))",
    'label_replace(up, "a", "$1", "job", "(.*)")',
    'sort_desc(up{job=~"a|b"} offset -5m)',
    "predict_linear(up[1h], 3600) < 0",
    "absent_over_time(up[10m]) or vector(0)",
]


def _rule_file(path: Path, exprs: list[str], group_fields: str = "") -> Path:
    lines = [
        "groups:",
        "  - name: g",
        *(f"    {f}" for f in group_fields.splitlines()),
        "    rules:",
    ]
    for index, expr in enumerate(exprs):
        lines += [f"      - record: r{index}", "        expr: |", f"          {expr}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("expr", "message", "column"), NEWER)
def test_newer_syntax_is_named_with_its_position(expr: str, message: str, column: int) -> None:
    parse(expr)  # soulwatch itself (Prometheus 3) loads it
    found = prometheus2_incompatibilities(expr)
    assert [(f.message[: len(message)], f.column) for f in found] == [(message, column)]


@pytest.mark.parametrize("expr", PORTABLE)
def test_portable_queries_get_no_warning(expr: str) -> None:
    assert prometheus2_incompatibilities(expr) == []


def test_holt_winters_fails_with_its_new_name() -> None:
    with pytest.raises(ParseError, match=r"renamed double_exponential_smoothing in Prometheus 3"):
        parse("holt_winters(up[5m], 0.1, 0.5)")


def test_warnings_agree_with_promtool_2(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    files = [_rule_file(tmp_path / f"newer{i}.yml", [expr]) for i, (expr, _, _) in enumerate(NEWER)]
    files.append(_rule_file(tmp_path / "offset.yml", ["up"], "query_offset: 1m"))
    files.append(_rule_file(tmp_path / "labels.yml", ["up"], "labels:\n  team: a"))
    portable = _rule_file(tmp_path / "portable.yml", PORTABLE)
    for path in files:
        assert check_rule_file(path)[1] == [], path.read_text()
        warnings = check_portability(path, "prometheus-2")
        assert len(warnings) == 1, path.read_text()
        done = subprocess.run(
            [promtool, "check", "rules", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, path.read_text()
        assert "FAILED" in done.stdout + done.stderr
    assert check_portability(portable, "prometheus-2") == []
    done = subprocess.run(
        [promtool, "check", "rules", str(portable)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_cli_prints_warnings_with_file_line_and_column(tmp_path: Path) -> None:
    path = _rule_file(
        tmp_path / "rules.yml", ["up", 'sort_by_label(up, "job")'], "query_offset: 1m"
    )
    done = subprocess.run(
        soulwatch_command("check", "rules", "--target", "prometheus-2", str(path)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr  # loads fine in soulwatch: warnings only
    out = done.stdout
    assert "SUCCESS: 2 rules found" in out
    assert "WARNING: 2 thing(s) prometheus-2 would not load" in out
    assert f"{path}:3:5: group field 'query_offset' needs Prometheus 2.53 or later" in out
    assert re.search(rf"{re.escape(str(path))}:10:11: function sort_by_label\(\)", out)
    plain = subprocess.run(
        soulwatch_command("check", "rules", str(path)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "WARNING" not in plain.stdout
