"""soulwatch's default routing for a small team's on-call.

Chosen for a team of a few people, not copied from Alertmanager's defaults:

* **P1** pages at once (``group_wait: 0s``) and also goes to chat; repeats hourly.
* **P2** goes to chat and opens a ticket (a GitHub issue) after a short wait;
  the ticket is commented on at most daily.
* A firing P1 mutes P2 alerts of the same ``service`` (the page says it all).
* Anything else goes to chat. Resolved notifications are on everywhere.

Secrets come from environment variables, so the text can be committed.
"""

from __future__ import annotations

from collections.abc import Mapping

from soulwatch.alerting.config import AlertingConfig, parse_config

DEFAULT_ROUTING_YAML = """\
route:
  receiver: chat
  group_by: [alertname, service]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 4h
  routes:
    - matchers: ['priority="P1"']
      receiver: page
      group_wait: 0s
      group_interval: 1m
      repeat_interval: 1h
      continue: true
    - matchers: ['priority="P1"']
      receiver: chat
      group_wait: 0s
      group_interval: 1m
      repeat_interval: 1h
    - matchers: ['priority="P2"']
      receiver: chat
      group_wait: 30s
      continue: true
    - matchers: ['priority="P2"']
      receiver: ticket
      group_wait: 1m
      repeat_interval: 24h
inhibit_rules:
  - source_matchers: ['priority="P1"']
    target_matchers: ['priority="P2"']
    equal: [service]
receivers:
  - name: page
    pagerduty_configs:
      - routing_key: ${PAGERDUTY_ROUTING_KEY}
  - name: chat
    slack_configs:
      - api_url: ${SLACK_WEBHOOK_URL}
  - name: ticket
    github_configs:
      - repository: ${GITHUB_REPOSITORY}
        token: ${GITHUB_TOKEN}
        labels: [soulwatch]
"""


def default_config(env: Mapping[str, str] | None = None) -> AlertingConfig:
    """The default routing, with secrets from ``env`` (default: the process environment)."""
    return parse_config(DEFAULT_ROUTING_YAML, file="<default routing>", env=env)
