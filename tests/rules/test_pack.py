"""The Soulcaster rule pack: valid, documented, and tested by promtool-format tests.

Every alerting rule has a test file in presets/soulcaster/rules/tests/ with a
case where it fires (and one evaluation earlier where it does not) and a case
where it must not fire. The tests pass under soulwatch and under the real
``promtool test rules``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from soulwatch.cli import main
from soulwatch.rules.loader import load_rule_files
from soulwatch.rules.unittest import run_test_file
from tests.helpers import REPO, need_binary

PACK = REPO / "src" / "soulwatch" / "presets" / "soulcaster" / "rules"
RULE_FILES = sorted(PACK.glob("*.yml"))
TEST_FILES = sorted((PACK / "tests").glob("*.yml"))
RUNBOOKS = REPO / "docs" / "runbooks.md"
SEED_ALERTS = {
    "BackendDown",
    "HighErrorRate",
    "AgentFailureSpike",
    "RedisConnectionLoss",
    "HighLatency",
    "RedditPollerLag",
    "E2BQuotaWarning",
    "AgentJobStuckRunning",
}
EXTRA_ALERTS = {"AgentJobStuckPending", "TargetDown", "Watchdog", "HeartbeatMissing"}


def _alerts() -> list:
    return [r for g in load_rule_files(RULE_FILES) for r in g.rules if r.is_alert]


def _anchors() -> set[str]:
    headings = re.findall(r"^#+ (.+)$", RUNBOOKS.read_text(), flags=re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_the_pack_has_the_seed_rules_and_the_extras() -> None:
    names = {r.name for r in _alerts()}
    assert names >= SEED_ALERTS | EXTRA_ALERTS


def test_every_rule_is_labelled_and_documented() -> None:
    anchors = _anchors()
    for rule in _alerts():
        assert rule.labels["priority"] in ("P1", "P2"), rule.name
        assert rule.labels["severity"] in ("page", "notify", "ticket"), rule.name
        assert rule.annotations["summary"], rule.name
        assert rule.annotations["description"], rule.name
        url = rule.annotations["runbook_url"]
        assert url.startswith("docs/runbooks.md#"), rule.name
        assert url.split("#", 1)[1] in anchors, f"{rule.name}: no runbook section {url}"
        assert not rule.uses_extensions, f"{rule.name} must stay promtool-compatible"


def test_every_rule_has_a_firing_case_and_a_quiet_case() -> None:
    cases: dict[str, list[tuple[str, list]]] = {}
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(
                    (case["eval_time"], case.get("exp_alerts") or [])
                )
    for rule in _alerts():
        seen = cases.get(rule.name, [])
        assert any(exp for _, exp in seen), f"{rule.name}: no case where it fires"
        if rule.name != "Watchdog":  # always fires, by design
            assert any(not exp for _, exp in seen), f"{rule.name}: no case where it must not fire"


@pytest.mark.parametrize("path", TEST_FILES, ids=[p.name for p in TEST_FILES])
def test_pack_tests_pass_under_soulwatch(path: Path) -> None:
    result = run_test_file(path)
    assert result.ok, result.report()


def test_pack_tests_pass_under_promtool() -> None:
    promtool = need_binary("promtool")
    proc = subprocess.run(
        [promtool, "test", "rules", *(p.name for p in TEST_FILES)],
        cwd=PACK / "tests",
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout.decode().count("SUCCESS") == len(TEST_FILES)


def test_pack_passes_promtool_check_rules() -> None:
    promtool = need_binary("promtool")
    proc = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()


def test_soulwatch_check_and_test_commands_accept_the_pack(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "rules", *map(str, RULE_FILES)]) == 0
    assert main(["test", "rules", *map(str, TEST_FILES)]) == 0
    out = capsys.readouterr().out
    assert out.count("SUCCESS") == len(RULE_FILES) + len(TEST_FILES)
