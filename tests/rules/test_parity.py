"""soulwatch and the real ``promtool test rules`` agree on the same test files.

The files in parity/ exercise ``for``, ``keep_firing_for``, templating
(humanize*, printf, if/else, external labels), recording rules and
``promql_expr_test``; the ``*_fail`` ones fail on purpose. For each file both
tools must agree on pass/fail and print the same failure report; only the
wording of PromQL parse errors after their position may differ (two parsers).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from soulwatch.rules.unittest import run_test_file
from tests.helpers import need_binary

PARITY = Path(__file__).parent / "parity"
FILES = sorted(PARITY.glob("*.test.yml"))
_PARSE_ERROR = re.compile(r"(parse error): .*")


def _normalise(report: str) -> list[str]:
    lines = [_PARSE_ERROR.sub(r"\1: ...", line.rstrip()) for line in report.splitlines()]
    return [line for line in lines if line]


def test_parity_set_has_passing_and_failing_files() -> None:
    names = {f.name for f in FILES}
    for topic in ("for", "keep_firing", "templating", "promql_expr"):
        assert f"{topic}_pass.test.yml" in names
        assert f"{topic}_fail.test.yml" in names


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_soulwatch_agrees_with_promtool(path: Path) -> None:
    promtool = need_binary("promtool")
    proc = subprocess.run(
        [promtool, "test", "rules", path.name],
        cwd=PARITY,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=60,
        check=False,
    )
    expected = proc.stdout.decode()
    ours = run_test_file(path)
    ours_report = ours.report().replace(str(path), path.name)
    assert ours.ok == (proc.returncode == 0), f"promtool:\n{expected}\nsoulwatch:\n{ours_report}"
    assert path.name.endswith("_pass.test.yml") == ours.ok
    assert _normalise(ours_report) == _normalise(expected)


def test_test_rules_command_exits_1_on_failure(capsys: pytest.CaptureFixture[str]) -> None:
    from soulwatch.cli import main

    assert main(["test", "rules", str(PARITY / "for_pass.test.yml")]) == 0
    assert main(["test", "rules", str(PARITY / "for_fail.test.yml")]) == 1
    out = capsys.readouterr().out
    assert "  SUCCESS" in out
    assert "alertname: Slow, time: 5m, " in out
