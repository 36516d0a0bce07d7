"""Routing: the same answers as ``amtool config routes test`` on the same file."""

from __future__ import annotations

import subprocess

import pytest

from soulwatch.alerting.config import load_config, parse_config
from soulwatch.alerting.defaults import DEFAULT_ROUTING_YAML, default_config
from soulwatch.alerting.export import export_alertmanager
from soulwatch.alerting.routing import build_tree, receivers_for
from soulwatch.tsdb.model import Labels
from tests.helpers import need_binary

# Shaped after the example configuration in Alertmanager's documentation.
DOCS_EXAMPLE = """
route:
  receiver: team-X-mails
  group_by: ['alertname', 'cluster', 'service']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 3h
  routes:
    - matchers: ['service=~"foo1|foo2|baz"']
      receiver: team-X-mails
      routes:
        - matchers: [severity="critical"]
          receiver: team-X-pager
    - matchers: [service="files"]
      receiver: team-Y-mails
      routes:
        - matchers: [severity="critical"]
          receiver: team-Y-pager
    - matchers: [service="database"]
      receiver: team-DB-pager
      group_by: [alertname, cluster, database]
      routes:
        - matchers: [owner="team-X"]
          receiver: team-X-pager
          continue: true
        - matchers: [owner="team-Y"]
          receiver: team-Y-pager
    - match_re: {priority: "P1|P0"}
      receiver: page
      continue: true
    - match: {priority: P1}
      receiver: chat
    - matchers: ['env!="prod"', 'team!~"a|b"']
      receiver: dev
receivers:
  - name: team-X-mails
  - name: team-X-pager
  - name: team-Y-mails
  - name: team-Y-pager
  - name: team-DB-pager
  - name: page
  - name: chat
  - name: dev
"""

LABEL_SETS = [
    {"alertname": "A", "service": "foo1"},
    {"alertname": "A", "service": "foo2", "severity": "critical"},
    {"alertname": "A", "service": "foo3", "env": "prod"},
    {"alertname": "A", "service": "files", "severity": "critical"},
    {"alertname": "A", "service": "files", "severity": "warning"},
    {"alertname": "A", "service": "database", "owner": "team-X"},
    {"alertname": "A", "service": "database", "owner": "team-Y"},
    {"alertname": "A", "service": "database", "owner": "team-Z"},
    {"alertname": "A", "priority": "P1", "env": "prod"},
    {"alertname": "A", "priority": "P0", "env": "prod"},
    {"alertname": "A", "env": "staging", "team": "c"},
    {"alertname": "A", "env": "staging", "team": "a"},
    {"alertname": "A", "env": "prod"},
]


def _amtool(path: str, labels: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [need_binary("amtool"), "config", "routes", "test", f"--config.file={path}"]
        + [f"{k}={v}" for k, v in labels.items()],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return out.stdout.strip().split(",")


def test_docs_example_matches_amtool(tmp_path):
    path = tmp_path / "alertmanager.yml"
    path.write_text(DOCS_EXAMPLE)
    tree = build_tree(load_config(path).route)
    ours = [receivers_for(tree, Labels.of(ls)) for ls in LABEL_SETS]
    theirs = [_amtool(str(path), ls) for ls in LABEL_SETS]
    assert ours == theirs
    # And a few answers spelled out, so the table itself is checked.
    assert ours[1] == ["team-X-pager"]
    assert ours[5] == ["team-X-pager"]
    assert ours[7] == ["team-DB-pager"]
    assert ours[8] == ["page", "chat"]


def test_default_routing_p1_pages_and_chats_p2_chats_and_tickets():
    tree = build_tree(default_config(_ENV).route)
    p1 = tree.match(Labels.of(alertname="BackendDown", priority="P1"))
    assert [n.options.receiver for n in p1] == ["page", "chat"]
    assert all(n.options.group_wait == 0 for n in p1)
    p2 = tree.match(Labels.of(alertname="SlowP95", priority="P2"))
    assert [n.options.receiver for n in p2] == ["chat", "ticket"]
    assert receivers_for(tree, Labels.of(alertname="Other")) == ["chat"]


_ENV = {
    "PAGERDUTY_ROUTING_KEY": "k",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
    "GITHUB_REPOSITORY": "acme/soulcaster",
    "GITHUB_TOKEN": "t",
}

FULL = """
global:
  resolve_timeout: 10m
  smtp_smarthost: mail.example.com:587
  smtp_from: soulwatch@example.com
route:
  receiver: chat
  group_by: ['...']
  routes:
    - matchers: [team=db]
      receiver: mail
      mute_time_intervals: [nights]
      active_time_intervals: [weekdays]
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
        location: Europe/Berlin
  - name: weekdays
    time_intervals:
      - weekdays: ['monday:friday']
        months: ['january:march', '10']
        days_of_month: ['1:5', '-3:-1']
inhibit_rules:
  - source_match: {severity: critical}
    target_match_re: {severity: "warning|info"}
    equal: [cluster]
receivers:
  - name: chat
    slack_configs: [{api_url: "https://hooks.slack.com/services/x", channel: "#ops"}]
    discord_configs: [{webhook_url: "https://discord.com/api/webhooks/1/x"}]
  - name: mail
    email_configs: [{to: oncall@example.com, require_tls: true}]
    webhook_configs:
      - url: http://127.0.0.1:9/hook
        max_alerts: 5
        hmac_secret: s
        http_config: {bearer_token: abc}
    pagerduty_configs: [{routing_key: k, severity: error}]
    github_configs: [{repository: a/b, token: t}]
    alertmanager_configs: [{url: "http://127.0.0.1:9093"}]
"""


@pytest.mark.parametrize("text", [DEFAULT_ROUTING_YAML, FULL], ids=["default", "full"])
def test_exported_config_passes_amtool_check_config(tmp_path, text):
    config = parse_config(text, env=_ENV)
    exported, warnings = export_alertmanager(config)
    path = tmp_path / "alertmanager.yml"
    path.write_text(exported)
    result = subprocess.run(
        [need_binary("amtool"), "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert any("github_configs" in w for w in warnings)
    # The exported file loads back into the same routing.
    again = build_tree(parse_config(exported).route)
    original = build_tree(config.route)
    for labels in [*LABEL_SETS, {"priority": "P1"}, {"priority": "P2"}, {"team": "db"}]:
        ls = Labels.of(labels)
        assert [n.options for n in again.match(ls)] == [n.options for n in original.match(ls)]
