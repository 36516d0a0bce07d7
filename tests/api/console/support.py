"""A real ``soulwatch run`` for the console's tests: a scraped app whose signals the test sets.

The "app" is a recording HTTP server answering ``/metrics`` with
``signal{name="..."}`` gauges the test flips; the rule ``SignalLow`` fires
for each signal at 0. Alerts route to a Slack incoming webhook played by
another recording server, with a 2 s ``repeat_interval`` so that repeats
(and their absence once acknowledged) show within seconds.
"""

from __future__ import annotations

import contextlib
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import (
    RecordedRequest,
    Recorder,
    Reply,
    free_port,
    soulwatch_command,
    started,
    subprocess_env,
)

SIGNALS = ("tile", "silence", "ack", "steady", "live")
BACKUP_CHECK = "0b5c7d1e-2f3a-4b6c-8d9e-0f1a2b3c4d5e"
READ_TOKEN = "console-read-token-0123456789"
WRITE_TOKEN = "console-write-token-0123456789"


@dataclass
class App:
    """The scraped app: ``signal{name}`` values the test changes."""

    values: dict[str, float] = field(default_factory=lambda: dict.fromkeys(SIGNALS, 1.0))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, name: str, value: float) -> None:
        """Change one signal (seen at the next scrape)."""
        with self.lock:
            self.values[name] = value

    def reply(self, request: RecordedRequest) -> Reply:
        """The exposition text of the current values."""
        with self.lock:
            lines = ["# TYPE signal gauge"]
            lines += [f'signal{{name="{n}"}} {v}' for n, v in self.values.items()]
        return Reply(200, ("\n".join(lines) + "\n").encode(), {"Content-Type": "text/plain"})


@dataclass
class Soulwatch:
    """A running soulwatch with its app and its Slack stand-in."""

    url: str
    app: App
    slack: Recorder
    api: httpx.Client
    proc: subprocess.Popen[bytes]
    log: Path

    def firing(self, name: str) -> bool:
        """Whether ``SignalLow{name}`` fires (per the API)."""
        alerts = self.api.get("/api/v1/alerts").json()["data"]["alerts"]
        return any(a["labels"].get("name") == name and a["state"] == "firing" for a in alerts)

    def alert_state(self, alertname: str) -> str:
        """``firing``, ``pending`` or ``inactive``: the state of the named alert (per the API)."""
        alerts = self.api.get("/api/v1/alerts").json()["data"]["alerts"]
        states = {a["state"] for a in alerts if a["labels"].get("alertname") == alertname}
        return "firing" if "firing" in states else "pending" if states else "inactive"

    def slack_messages(self, name: str) -> list[dict[str, object]]:
        """The Slack messages about signal ``name``, in order (its summary names it)."""
        needle = f"signal {name} is low"
        return [r.json() for r in self.slack.received("/slack") if needle in r.body.decode()]


def write_config(tmp: Path, *, port: int, app_url: str, slack_url: str, auth: bool) -> Path:
    """soulwatch.yaml, the rule file and a board, in ``tmp``."""
    (tmp / "rules.yml").write_text(
        textwrap.dedent(
            """\
            groups:
              - name: signals
                rules:
                  - alert: SignalLow
                    expr: signal == 0
                    for: 1s
                    labels: {priority: P1}
                    annotations:
                      summary: "signal {{ $labels.name }} is low"
                  - alert: HeartbeatDown
                    expr: heartbeat_up == 0
                    labels: {priority: P2}
                    annotations:
                      summary: "{{ $labels.check }} did not ping on time"
            """
        )
    )
    (tmp / "board.yml").write_text(
        textwrap.dedent(
            """\
            name: signals
            title: Signals
            refresh: 1s
            range: 10m
            columns: [level]
            rows:
            """
        )
        + "".join(
            textwrap.indent(
                textwrap.dedent(
                    f"""\
                    - title: {name}
                      panels:
                        - title: level
                          column: level
                          expr: min(signal{{name="{name}"}})
                          unit: short
                          thresholds: {{crit: 1, direction: below}}
                          alert: {{alertname: SignalLow, name: {name}}}
                    """
                ),
                "  ",
            )
            for name in SIGNALS
        )
    )
    # The same tiles with an hour between refreshes: only a pushed event updates them soon.
    (tmp / "slow.yml").write_text(
        (tmp / "board.yml")
        .read_text()
        .replace("name: signals", "name: slow")
        .replace("title: Signals", "title: Signals, hourly")
        .replace("refresh: 1s", "refresh: 1h")
    )
    auth_section = ""
    if auth:
        auth_section = textwrap.dedent(
            f"""\
            auth:
              reads: token
              tokens:
                - {{name: reader, token: {READ_TOKEN}, scopes: [read]}}
                - {{name: oncall, token: {WRITE_TOKEN}, scopes: [silences]}}
            """
        )
    config = tmp / "soulwatch.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{port}
            external_url: http://127.0.0.1:{port}
            data_dir: data
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files: [rules.yml]
            heartbeats:
              checks:
                - name: nightly-backup
                  uuid: {BACKUP_CHECK}
                  description: The database backup job pings when it ends.
                  period: 1d
                  grace: 1h
            console:
              boards: [board.yml, slow.yml]
            scrape_configs:
              - job_name: app
                static_configs:
                  - targets: ["{app_url.removeprefix("http://")}"]
            alerting:
              route:
                receiver: slack
                group_by: [alertname, name]
                group_wait: 0s
                group_interval: 1s
                repeat_interval: 2s
              receivers:
                - name: slack
                  slack_configs:
                    - api_url: {slack_url}/slack
                      send_resolved: true
            """
        )
        + auth_section
    )
    return config


@contextlib.contextmanager
def running_soulwatch(tmp: Path, *, auth: bool = False) -> Iterator[Soulwatch]:
    """Start the app, the Slack stand-in and ``soulwatch run``; stop them all at the end."""
    app = App()
    with Recorder(handler=app.reply) as app_server, Recorder() as slack:
        port = free_port()
        config = write_config(
            tmp, port=port, app_url=app_server.url, slack_url=slack.url, auth=auth
        )
        url = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {READ_TOKEN}"} if auth else {}
        with (
            httpx.Client(base_url=url, timeout=5, headers=headers) as api,
            started(
                soulwatch_command("run", "-c", str(config)),
                env=subprocess_env(),
                cwd=str(tmp),
                ready=lambda: api.get("/-/ready").status_code == 200,
                timeout=30,
                output=tmp / "soulwatch.log",
            ) as proc,
        ):
            yield Soulwatch(url, app, slack, api, proc, tmp / "soulwatch.log")
