"""`soulwatch test scenario FILE...`: a report per step, exit 0 / 1 / 2."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import soulwatch_command, subprocess_env
from tests.scenario.support import EXAMPLES, OUTAGE, write


def _run(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        soulwatch_command("test", "scenario", *map(str, files)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_passing_and_failing_scenarios(tmp_path: Path) -> None:
    wrong = write(
        tmp_path,
        "name: wrong receiver\nconfig: @CONFIG@\ntimeline:\n"
        + OUTAGE
        + "  - at: 5m\n    expect:\n"
        + "      - {receiver: ticket, status: firing, alertname: BackendDown}\n"
        + "      - {receiver: chat, status: firing, alertname: BackendDown}\n",
    )
    proc = _run(EXAMPLES / "backend_down.scenario.yml", wrong)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout
    # The example passes, step by step, with the step's time and line.
    assert "PASS          5m  line 24: expect 2 notifications since 3m" in out
    assert "OK: 12/12 steps passed" in out  # 6 checks and the poller's 6 pings
    # The wrong one says what was expected and what went out instead.
    assert f"{wrong}: wrong receiver" in out
    assert "FAIL          5m  line 9: expect 2 notifications since 0s" in out
    assert "missing:    ticket firing BackendDown" in out
    assert "unexpected: 4m" in out
    assert "FAILED: 1/2 steps passed" in out
    assert "1 of 2 scenarios passed" in out
    # The monitor's info logs stay out of the report.
    assert "soulwatch started" not in out + proc.stderr


def test_a_malformed_file_is_a_positioned_error(tmp_path: Path) -> None:
    bad = write(tmp_path, "config: @CONFIG@\ntimeline:\n  - at: 0s\n    expect_nothing: true\n")
    proc = _run(bad)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert f"soulwatch: error: {bad}:4:5: unknown setting 'expect_nothing'" in proc.stderr
