"""Rule files: what loads, and every problem named by file:line:col."""

from __future__ import annotations

from pathlib import Path

import pytest

from soulwatch.cli import main
from soulwatch.rules.loader import RuleFileProblems, check_rule_file, load_rule_files
from soulwatch.rules.model import NoDataPolicy, RuleKind, format_duration, parse_duration
from tests.rules.support import write

GOOD = """\
groups:
  - name: api
    interval: 30s
    limit: 10
    query_offset: 1m
    labels: {team: core}
    rules:
      - record: job:errors:rate5m
        expr: sum by (job) (rate(errors_total[5m]))
      - alert: Errors
        expr: job:errors:rate5m > 1
        for: 5m
        keep_firing_for: 10m
        labels: {severity: page}
        annotations: {summary: "{{ $labels.job }}: {{ $value | humanize }}"}
"""

BAD = """\
groups:
  - name: g
    interval: 1x
    rules:
      - alert: A
        expr: sum(rate(x[5m])
        annotations:
          summary: "{{ $value | nope }}"
      - record: "bad name"
        expr: up
        for: 1m
      - alert: B
        record: c
        expr: up
      - alert: C
        expr: |
          sum(rate(x[5m]))
            / foo bar
        foo: bar
        labels:
          "bad-label": x
  - name: g
    rules: []
"""


def test_a_valid_file_loads_with_every_field(tmp_path: Path) -> None:
    [group] = load_rule_files([write(tmp_path / "r.yml", GOOD)])
    assert (group.name, group.interval_s, group.limit, group.query_offset_s) == ("api", 30, 10, 60)
    assert group.labels == {"team": "core"}
    record, alert = group.rules
    assert record.kind is RuleKind.RECORD
    assert record.name == "job:errors:rate5m"
    assert alert.kind is RuleKind.ALERT
    assert (alert.for_s, alert.keep_firing_for_s) == (300, 600)
    assert alert.no_data is NoDataPolicy.OK
    assert str(alert.position) == f"{tmp_path / 'r.yml'}:10:9"
    assert not alert.uses_extensions


def test_every_problem_is_reported_with_its_position(tmp_path: Path) -> None:
    path = write(tmp_path / "bad.yml", BAD)
    _, problems = check_rule_file(path)
    where = [(p.line, p.column) for p in problems]
    reasons = [p.reason for p in problems]
    assert where == [
        (3, 15),
        (6, 30),
        (8, 20),
        (9, 17),
        (11, 9),
        (12, 9),
        (19, 9),
        (18, 19),
        (21, 11),
        (22, 5),
    ]
    assert reasons[0] == 'interval: not a valid duration string: "1x"'
    assert reasons[1].startswith("could not parse expression: ")
    assert reasons[2] == 'annotation summary: template: function "nope" not defined'
    assert reasons[3] == "invalid recording rule name: bad name"
    assert reasons[4] == "invalid field 'for' in recording rule"
    assert reasons[5] == "one of 'record' or 'alert' must be set"
    assert reasons[6] == "field foo not found in rule"
    assert 'unexpected identifier "bar"' in reasons[7]
    assert reasons[8] == "invalid label name: bad-label"
    assert reasons[9] == 'groupname: "g" is repeated in the same file'
    with pytest.raises(RuleFileProblems) as info:
        load_rule_files([path])
    assert str(info.value) == f"{path}:3:15: {reasons[0]}"
    assert len(info.value.problems) == len(problems)


def test_yaml_syntax_errors_and_missing_files(tmp_path: Path) -> None:
    _, problems = check_rule_file(write(tmp_path / "y.yml", "groups:\n  - name: [unclosed\n"))
    [problem] = problems
    assert problem.line == 3
    assert problem.reason.startswith("yaml: ")
    _, problems = check_rule_file(tmp_path / "missing.yml")
    assert problems[0].reason.startswith("cannot read rule file")


def test_check_rules_command_exit_codes_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write(tmp_path / "good.yml", GOOD)
    bad = write(tmp_path / "bad.yml", BAD)
    assert main(["check", "rules", str(good)]) == 0
    assert "SUCCESS: 2 rules found" in capsys.readouterr().out
    assert main(["check", "rules", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"  {bad}:3:15: interval: not a valid duration string" in out
    assert "FAILED: 10 problem(s)" in out


@pytest.mark.parametrize(
    ("text", "seconds", "spelled"),
    [
        ("90s", 90, "1m30s"),
        ("1h30m", 5400, "1h30m"),
        ("2d", 172800, "2d"),
        ("0", 0, "0s"),
        ("250ms", 0.25, "250ms"),
    ],
)
def test_durations_round_trip(text: str, seconds: float, spelled: str) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == spelled


def test_bad_durations_are_rejected() -> None:
    for text in ("", "5", "1.5m", "m", "5m1h"):
        with pytest.raises(ValueError, match="not a valid duration"):
            parse_duration(text)
