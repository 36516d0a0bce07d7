"""An inline configuration: relative paths from the scenario file, receivers never contacted."""

from __future__ import annotations

from pathlib import Path

from soulwatch.scenario import load_scenario, run_scenario
from tests.helpers import Recorder

RULES = """\
groups:
  - name: jobs
    interval: 10s
    rules:
      - alert: JobDown
        expr: up{job="worker"} == 0
        for: 1m
        labels: {team: core}
"""

SCENARIO = """\
name: inline config
env:
  HOOK_URL: @URL@/hook
config:
  rule_files: [rules/*.yml]
  alerting:
    route:
      receiver: hook
      group_by: [alertname]
      group_wait: 20s
      group_interval: 1m
    receivers:
      - name: hook
        webhook_configs:
          - url: ${HOOK_URL}
timeline:
  - at: 0s
    interval: 10s
    samples:
      'up{job="worker", instance="w1"}': '1x5 0x30 1x30'
  - at: 2m
    expect_none: true
  - at: 3m
    expect:
      - receiver: hook
        status: firing
        alertname: JobDown
        labels: {team: core}
        between: [2m, 2m30s]
  - at: 8m
    expect:
      - {receiver: hook, status: resolved, alertname: JobDown, between: [6m, 7m30s]}
"""


async def test_inline_config_runs_and_never_contacts_the_receiver(
    tmp_path: Path, recorder: Recorder
) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "worker.yml").write_text(RULES)
    path = tmp_path / "inline.scenario.yml"
    path.write_text(SCENARIO.replace("@URL@", recorder.url))
    # Loaded from another directory: paths resolve from the scenario file.
    result = await run_scenario(load_scenario(path))
    assert result.ok, [s.problems for s in result.steps]
    assert [(s.receiver, s.status.value) for s in result.sent] == [
        ("hook", "firing"),
        ("hook", "resolved"),
    ]
    # The real webhook notifier built and sent both requests, in-process.
    assert result.requests == [f"POST {recorder.url}/hook"] * 2
    assert recorder.received() == []


HEARTBEATS = """\
config:
  global: {evaluation_interval: 10s}
  rule_files: [hb.yml]
  heartbeats:
    checks:
      - {name: poller, period: 10m, grace: 5m}
      - {name: backup, period: 1d, grace: 1h}
  alerting:
    route: {receiver: team, group_by: [check], group_wait: 0s}
    receivers:
      - name: team
        slack_configs:
          - api_url: https://hooks.slack.example/x
timeline:
  - at: 0s
    ping: [poller, {check: backup, kind: fail}]
  - at: 1m
    expect:
      - {receiver: team, status: firing, alertname: HeartbeatDown, labels: {check: backup}}
  - at: 2m
    ping: {check: backup, kind: success}
  - at: 10m
    expect:
      - {receiver: team, status: resolved, alertname: HeartbeatDown, labels: {check: backup}}
"""


async def test_pings_in_a_list_and_a_failure_ping(tmp_path: Path) -> None:
    (tmp_path / "hb.yml").write_text(
        "groups:\n  - name: hb\n    rules:\n"
        "      - {alert: HeartbeatDown, expr: heartbeat_up == 0}\n"
    )
    path = tmp_path / "hb.scenario.yml"
    path.write_text(HEARTBEATS)
    result = await run_scenario(load_scenario(path))
    assert result.ok, [s.problems for s in result.steps]
    # The failure ping is down at once: the page goes out within one evaluation.
    assert result.sent[0].offset <= 20
    assert result.requests[0] == "POST https://hooks.slack.example/x"
