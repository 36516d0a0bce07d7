"""A scenario with an email receiver records the mail and never connects to the SMTP host."""

from __future__ import annotations

import socket
from pathlib import Path

from soulwatch.scenario import load_scenario, run_scenario
from tests.helpers import free_port

SCENARIO = """\
name: email receiver
config:
  global: {evaluation_interval: 10s}
  rule_files: [rules.yml]
  alerting:
    route: {receiver: mail, group_wait: 0s}
    receivers:
      - name: mail
        email_configs:
          - {to: oncall@example.com, from: soulwatch@example.com, smarthost: '127.0.0.1:@PORT@',
             require_tls: false}
timeline:
  - at: 0s
    interval: 10s
    samples:
      'up{job="worker"}': '0x12'
  - at: 1m
    expect:
      - {receiver: mail, status: firing, alertname: WorkerDown, between: [0s, 30s]}
"""


async def test_an_email_receiver_is_recorded_not_sent(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: WorkerDown\n        expr: up == 0\n"
    )
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as smtp:
        smtp.settimeout(0)
        path = tmp_path / "mail.scenario.yml"
        path.write_text(SCENARIO.replace("@PORT@", str(port)))
        result = await run_scenario(load_scenario(path))
        assert result.ok, [s.problems for s in result.steps]
        assert [(s.receiver, s.status.value) for s in result.sent] == [("mail", "firing")]
        # Nobody knocked on the SMTP port.
        try:
            smtp.accept()
        except BlockingIOError:
            pass
        else:
            raise AssertionError("the scenario connected to the SMTP host")
