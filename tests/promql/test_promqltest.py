"""The promqltest script runner: script parsing, comparison rules, unsupported detection."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import pytest

from soulwatch.exceptions import ConfigError
from soulwatch.promql.engine import Engine
from soulwatch.promql.promqltest import (
    Outcome,
    almost_equal,
    parse_script,
    run_script,
    unsupported_reason,
)
from soulwatch.tsdb.model import Labels
from tests.helpers import soulwatch_command, subprocess_env


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1.0, 1.0, True),
        (math.nan, math.nan, True),
        (math.inf, math.inf, True),
        (math.inf, -math.inf, False),
        (1.0, 1.0 + 1e-9, True),
        (1.0, 1.00001, False),
        (0.0, 1e-300, False),
        (1e20, 1e20 * (1 + 1e-8), True),
        (math.nan, 1.0, False),
    ],
)
def test_almost_equal_uses_prometheus_relative_tolerance(a: float, b: float, equal: bool) -> None:
    assert almost_equal(a, b) is equal


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("sum(rate(x[5m]))", None),
        ("info(up)", None),
        ("increase(x[1m] anchored)", "extended range selectors"),
        ("rate(x[5m] smoothed)", "extended range selectors"),
        ("histogram_count(h </ 2)", "native histograms"),
        ("h >/ 2", "native histograms"),
        ("x offset STEP()", "duration expressions"),
        ("start_timestamp(x)", "start timestamps"),
        ('x{a="anchored"}', None),
        ("mad_over_time(x[5m])", None),
        ("histogram_count(x)", "native histograms"),
        ("x[step()]", "duration expressions"),
        ("x[5m + 1m]", "duration expressions"),
        ("vector(range())", "duration expressions"),
        ("end() - start()", "duration expressions"),
        ("x @ start()", None),
        ("min_of(1, 2)", "duration expressions"),
        ("a + fill(0) b", "fill modifiers"),
        ('x{a="[1+2]"}', None),
    ],
)
def test_unsupported_features_are_detected_by_name(query: str, reason: str | None) -> None:
    assert unsupported_reason(query) == reason


def test_queries_touching_native_histogram_series_are_unsupported() -> None:
    histograms = [Labels.of(__name__="req_hist", job="a")]
    assert unsupported_reason('rate(req_hist{job="a"}[5m])', histograms) == "native histograms"
    assert unsupported_reason('{__name__=~"req.*"}', histograms) == "native histograms"
    assert unsupported_reason('req_hist{job="b"}', histograms) is None


def test_start_timestamp_lines_are_read_and_their_series_unsupported() -> None:
    script = """
load 1m
    cumulative{type="a"}@st  _ _ -30s-1mx2
    cumulative{type="a"}     _ _ 1+1x2
    other 1 2 3

eval instant at 3m increase(cumulative[5m])
    {type="a"} 9

eval instant at 2m other
    other 3
"""
    (load,) = [c for c in parse_script(script) if hasattr(c, "start_timestamps")]
    assert load.start_timestamps == [Labels.of(__name__="cumulative", type="a")]
    report = run_script(script, Engine)
    outcomes = [(c.outcome, c.reason) for c in report.cases]
    assert outcomes == [(Outcome.UNSUPPORTED, "start timestamps"), (Outcome.PASSED, "")]


def test_malformed_script_names_file_and_line() -> None:
    script = "load 5m\n  up 1 2 3\n\nfrobnicate instant at 0 up\n"
    with pytest.raises(ConfigError) as caught:
        parse_script(script, "bad.test")
    assert (caught.value.file, caught.value.line) == ("bad.test", 4)
    assert "invalid command" in str(caught.value)


def test_bad_expect_line_is_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid expect statement"):
        parse_script("eval instant at 0 1\n  expect sometimes\n  1\n", "x.test")


def test_bad_points_are_rejected() -> None:
    with pytest.raises(ConfigError, match="invalid number") as caught:
        parse_script('load 1m\n  up{job="a"} 1 2 three\n', "x.test")
    assert caught.value.line == 2


SCRIPT = """
# counters and gauges
load 1m
  http_requests{job="api"} 0+10x10
  http_requests{job="web"} 1+2x3 _ stale 7 -1-1x2
  temperature 20x3

eval instant at 5m http_requests
  http_requests{job="api"} 50

eval instant at 2m http_requests{job="web"}
  http_requests{job="web"} 5

eval range from 0 to 8m step 1m http_requests{job="web"}
  http_requests{job="web"} 1 3 5 7 7 _ 7 -1 -2

eval instant at 10m sort_desc(http_requests)
  expect ordered
  http_requests{job="api"} 100
  http_requests{job="web"} -3

eval instant at 3m temperature[3m]
  expect range vector from 1m to 3m step 1m
  temperature 20 20 20

eval instant at 0 scalar(temperature) * 2
  40

eval instant at 0 "hello"
  expect string "hello"

eval instant at 0 1 > 2
  expect fail msg: 1:3: parse error: comparisons between scalars must use BOOL modifier

eval_fail instant at 0 sum(rate(x))

eval instant at 5m sum(http_requests)
  {} 51

eval instant at 0 histogram_count(http_requests)
"""


def test_a_script_runs_through_the_real_engine() -> None:
    report = run_script(SCRIPT, Engine, file="example.test")
    by_line = {case.line: case for case in report.cases}
    assert report.failed == 1, report.failures()
    failure = report.failures()[0]
    assert failure.line == 37
    assert failure.query == "sum(http_requests)"
    assert "value mismatch" in failure.reason
    assert "{} 51" in failure.expected
    assert "{} 50" in failure.got
    assert report.unsupported == 1
    assert by_line[40].outcome is Outcome.UNSUPPORTED
    assert by_line[40].reason == "native histograms"
    assert report.passed == len(report.cases) - 2


def test_a_wrong_order_fails_only_when_order_is_expected() -> None:
    script = SCRIPT.split("eval instant at 3m", maxsplit=1)[0].replace("  expect ordered\n", "")
    swapped = script.replace(
        '  http_requests{job="api"} 100\n  http_requests{job="web"} -3',
        '  http_requests{job="web"} -3\n  http_requests{job="api"} 100',
    )
    assert run_script(swapped, Engine).failed == 0
    ordered = swapped.replace(
        "sort_desc(http_requests)\n", "sort_desc(http_requests)\n  expect ordered\n"
    )
    report = run_script(ordered, Engine)
    assert report.failed == 1
    assert "position" in report.failures()[0].reason


def test_expected_error_message_must_match() -> None:
    script = "eval instant at 0 1 > 2\n  expect fail msg: something else\n"
    report = run_script(script, Engine)
    assert report.failed == 1
    assert "comparisons between scalars" in report.failures()[0].got


def test_annotation_expectations() -> None:
    script = (
        "load 1m\n  gauge 1 2 3\n\n"
        "eval instant at 2m rate(gauge[5m])\n  expect info\n  {} 0.0083333333\n"
    )
    with_info = run_script(script, Engine)
    assert with_info.failed == 0, with_info.failures()
    without = run_script(script.replace("expect info", "expect no_info"), Engine)
    assert without.failed == 1
    assert "unexpected info" in without.failures()[0].reason


def test_cli_prints_counts_and_failures(tmp_path: Path) -> None:
    script = tmp_path / "example.test"
    script.write_text(SCRIPT, encoding="utf-8")
    done = subprocess.run(
        soulwatch_command("promql", "test", str(script)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert f"{script}: 9 passed, 1 failed, 1 unsupported" in done.stdout
    assert f"FAIL {script}:37: sum(http_requests)" in done.stdout


def test_cli_exit_codes_for_passing_and_malformed_scripts(tmp_path: Path) -> None:
    good = tmp_path / "good.test"
    good.write_text("eval instant at 0 1 + 1\n  2\n", encoding="utf-8")
    bad = tmp_path / "bad.test"
    bad.write_text("load forever\n  up 1\n", encoding="utf-8")
    ok = subprocess.run(
        soulwatch_command("promql", "test", str(good)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, f"{good}: 1 passed, 0 failed, 0 unsupported")
    broken = subprocess.run(
        soulwatch_command("promql", "test", str(bad), str(good)),
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert broken.returncode == 2
    assert f"{bad}:1:" in broken.stderr
    # The scripts after a malformed one still run.
    assert f"{good}: 1 passed, 0 failed, 0 unsupported" in broken.stdout


def test_cli_enables_engine_features_by_prometheus_name(tmp_path: Path) -> None:
    script = tmp_path / "names.test"
    script.write_text(
        "load 1m\n  m_total 0+1x10\n\n"
        "eval instant at 10m label_replace(rate(m_total[5m]), "
        '"n", "$1", "__name__", "(.+)")\n'
        '  {n="m_total"} 0.016666666666666666\n',
        encoding="utf-8",
    )

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            soulwatch_command("promql", "test", *flags, str(script)),
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    # Prometheus 3's default drops the name in rate(): label_replace finds none.
    assert run().returncode == 1
    delayed = run("--enable-feature", "promql-delayed-name-removal")
    assert (delayed.returncode, delayed.stdout.strip()) == (
        0,
        f"{script}: 1 passed, 0 failed, 0 unsupported",
    )
    unknown = run("--enable-feature", "no-such-feature")
    assert unknown.returncode == 2
    assert "unknown feature 'no-such-feature'" in unknown.stderr
