"""``alerting.alertmanagers``: soulwatch sends its alerts to Alertmanagers as Prometheus does.

One prometheus.yml-style section is given to Prometheus 2.42 and to
soulwatch. Both post to a recording server (under different
``path_prefix``es), so what each sends is compared field by field; soulwatch
also posts to a real ``prometheus-alertmanager``, which routes the alert to
a webhook, and receives the resolution when the pushed metric behind the
rule goes back to 0.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError
from tests.helpers import (
    Recorder,
    free_port,
    need_binary,
    soulwatch_command,
    started,
    subprocess_env,
    wait_until,
)

PUSH_TOKEN = "push-token-0123456789abcdef"

RULES = """\
groups:
  - name: sent
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(1)
        labels:
          severity: info
        annotations:
          summary: always on
      - alert: JobFailing
        expr: job_failed > 0
        labels:
          severity: page
"""

AM_CONFIG = """\
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: {url}/hook
        send_resolved: true
"""


def _alerting(recorder_port: int, prefix: str, am_port: int | None) -> str:
    extra = f'\n          - targets: ["127.0.0.1:{am_port}"]' if am_port else ""
    return f"""\
alerting:
  alert_relabel_configs:
    - target_label: relabeled
      replacement: "yes"
  alertmanagers:
    - path_prefix: {prefix}
      static_configs:
        - targets: ["127.0.0.1:{recorder_port}"]
    - static_configs:{extra or " []"}
"""


@dataclass
class Setup:
    soulwatch: str
    prometheus: str
    alertmanager: str
    posts: Recorder
    hooks: Recorder


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    prometheus = need_binary("prometheus")
    alertmanager = need_binary("prometheus-alertmanager")
    workdir = tmp_path_factory.mktemp("amsender")
    (workdir / "rules.yml").write_text(RULES)
    with Recorder() as posts, Recorder() as hooks:
        sw_port, am_port, prom_port = free_port(), free_port(), free_port()
        common = textwrap.dedent(
            """\
            global:
              evaluation_interval: 1s
              external_labels:
                site: lab
            rule_files: [rules.yml]
            """
        )
        (workdir / "soulwatch.yaml").write_text(
            common
            + _alerting(posts.port, "/sw", am_port)
            + f"auth:\n  tokens:\n    - name: ci\n      token: {PUSH_TOKEN}\n      scopes: [push]\n"
        )
        (workdir / "prometheus.yml").write_text(common + _alerting(posts.port, "/prom", None))
        (workdir / "alertmanager.yml").write_text(AM_CONFIG.format(url=hooks.url))
        sw = f"http://127.0.0.1:{sw_port}"
        am = f"http://127.0.0.1:{am_port}"
        prom = f"http://127.0.0.1:{prom_port}"
        ready = lambda base: lambda: httpx.get(base + "/-/ready", timeout=1).status_code == 200  # noqa: E731
        with (
            started(
                [
                    alertmanager,
                    f"--config.file={workdir / 'alertmanager.yml'}",
                    f"--storage.path={workdir / 'am'}",
                    f"--web.listen-address=127.0.0.1:{am_port}",
                    "--cluster.listen-address=",
                ],
                ready=ready(am),
                timeout=60,
            ),
            started(
                soulwatch_command(
                    "run",
                    "-c",
                    str(workdir / "soulwatch.yaml"),
                    "--data-dir",
                    str(workdir / "sw"),
                    "--listen",
                    f"127.0.0.1:{sw_port}",
                ),
                env=subprocess_env(),
                ready=ready(sw),
                timeout=60,
            ),
            started(
                [
                    prometheus,
                    f"--config.file={workdir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={workdir / 'prom'}",
                    f"--web.listen-address=127.0.0.1:{prom_port}",
                    # Its first send precedes Alertmanager discovery; resend soon after.
                    "--rules.alert.resend-delay=1s",
                ],
                ready=ready(prom),
                timeout=60,
            ),
        ):
            yield Setup(sw, prom, am, posts, hooks)


def _first_post(setup: Setup, prefix: str, alertname: str) -> tuple[float, dict[str, Any]]:
    for request in setup.posts.received(f"{prefix}/api/v2/alerts"):
        for alert in request.json():
            if alert["labels"]["alertname"] == alertname:
                return request.received_at, alert
    return 0.0, {}


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.slow
def test_soulwatch_posts_what_prometheus_posts(setup: Setup) -> None:
    wait_until(lambda: _first_post(setup, "/prom", "AlwaysOn")[1], timeout=30, what="prometheus")
    wait_until(lambda: _first_post(setup, "/sw", "AlwaysOn")[1], timeout=30, what="soulwatch")
    prom_at, theirs = _first_post(setup, "/prom", "AlwaysOn")
    sw_at, ours = _first_post(setup, "/sw", "AlwaysOn")
    assert set(ours) == set(theirs)
    assert (
        ours["labels"]
        == theirs["labels"]
        == {
            "alertname": "AlwaysOn",
            "severity": "info",
            "site": "lab",
            "relabeled": "yes",
        }
    )
    assert ours["annotations"] == theirs["annotations"] == {"summary": "always on"}
    # A firing alert is valid for four times the longer of the resend delay and the
    # interval: 4 x 1s for this Prometheus (resend delay 1s), 4 x 1m for soulwatch.
    assert 2 < _seconds(theirs["endsAt"]) - prom_at < 6
    assert 236 < _seconds(ours["endsAt"]) - sw_at < 242
    assert ours["generatorURL"].endswith(theirs["generatorURL"].split("/graph", 1)[1])
    [active] = httpx.get(setup.prometheus + "/api/v1/alertmanagers").json()["data"][
        "activeAlertmanagers"
    ]
    ours_listed = httpx.get(setup.soulwatch + "/api/v1/alertmanagers").json()["data"]
    assert {"url": active["url"].replace("/prom/", "/sw/")} in ours_listed["activeAlertmanagers"]


def _am_alerts(setup: Setup, alertname: str) -> list[Any]:
    alerts = httpx.get(setup.alertmanager + "/api/v2/alerts", timeout=5).json()
    return [a for a in alerts if a["labels"]["alertname"] == alertname]


def _hooked(setup: Setup, status: str) -> list[Any]:
    return [
        body
        for body in (r.json() for r in setup.hooks.received("/hook"))
        if body["status"] == status and body["groupLabels"] == {"alertname": "JobFailing"}
    ]


def _push(setup: Setup, value: int) -> None:
    r = httpx.post(
        setup.soulwatch + "/api/v1/push/job/nightly",
        content=f"job_failed {value}\n",
        headers={"Authorization": f"Bearer {PUSH_TOKEN}"},
        timeout=10,
    )
    assert r.status_code // 100 == 2, r.text


@pytest.mark.slow
def test_a_real_alertmanager_receives_and_resolves_soulwatch_alerts(setup: Setup) -> None:
    _push(setup, 1)
    [alert] = wait_until(lambda: _am_alerts(setup, "JobFailing"), timeout=30, what="in the AM")
    assert alert["labels"] == {
        "alertname": "JobFailing",
        "severity": "page",
        "site": "lab",
        "relabeled": "yes",
        "job": "nightly",
    }
    assert alert["status"]["state"] == "active"
    wait_until(lambda: _hooked(setup, "firing"), timeout=30, what="the AM's firing webhook")
    _push(setup, 0)
    [resolved, *_] = wait_until(
        lambda: _hooked(setup, "resolved"), timeout=30, what="the AM's resolved webhook"
    )
    assert resolved["alerts"][0]["labels"]["alertname"] == "JobFailing"
    assert resolved["alerts"][0]["status"] == "resolved"


def test_service_discovery_is_refused_not_ignored(tmp_path: Path) -> None:
    text = textwrap.dedent(
        """\
        alerting:
          alertmanagers:
            - file_sd_configs:
                - files: [ams.json]
        """
    )
    with pytest.raises(ConfigError, match="file_sd_configs is not supported"):
        parse_config(text)
    with pytest.raises(ConfigError, match="api_version"):
        parse_config("alerting:\n  alertmanagers:\n    - api_version: v1\n")
