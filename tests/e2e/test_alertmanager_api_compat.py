"""soulwatch as an Alertmanager: a real Prometheus 2.42 sends its alerts to it, amtool reads it,
and its API v2 answers like a real Alertmanager 0.25 given the same routing.

- Prometheus evaluates an always-firing rule and posts to soulwatch's
  ``/api/v2/alerts`` (``alerting.alertmanagers`` with a bearer token); the
  alert is routed, grouped and delivered by soulwatch to a recording webhook.
  A rule over a scraped metric fires, then resolves when the metric drops:
  both reach the webhook. vmalert, querying soulwatch, sends to it too.
- ``amtool alert query``, ``alert add``, ``config show`` and ``cluster show``
  run against soulwatch.
- The same alerts posted to soulwatch and to ``prometheus-alertmanager``
  with the same route and receivers give the same ``/api/v2/alerts``,
  ``/alerts/groups`` and ``/status`` structures, fingerprints and states.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Recorder, Reply, free_port, need_binary, started, wait_until
from tests.peers import alertmanager_peer, prometheus_peer, ready_at, soulwatch_peer

pytestmark = pytest.mark.slow

TOKEN = "alerts-token-0123456789abcdef"

ROUTING = """\
route:
  receiver: team
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - receiver: pager
      matchers: ['severity="page"']
      continue: true
receivers:
  - name: team
    webhook_configs:
      - url: {url}/team
  - name: pager
    webhook_configs:
      - url: {url}/pager
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="info"']
    equal: [service]
"""

RULES = """\
groups:
  - name: sent
    interval: 1s
    rules:
      - alert: BackendDown
        expr: vector(1)
        labels:
          severity: page
          service: backend
        annotations:
          summary: the backend is down
      - alert: JobFailing
        expr: job_failed > 0
        labels:
          severity: page
"""


@dataclass
class Peers:
    soulwatch: str
    alertmanager: str
    prometheus: str
    hooks: Recorder
    am_hooks: Recorder
    exporter: Recorder
    workdir: Path


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    need_binary("amtool")
    workdir = tmp_path_factory.mktemp("amcompat")
    failing = Reply(body=b"job_failed 1\n", headers={"Content-Type": "text/plain"})
    with Recorder() as hooks, Recorder() as am_hooks, Recorder(default=failing) as exporter:
        sw_port = free_port()  # the Prometheus config names it
        routing = textwrap.indent(ROUTING.format(url=hooks.url), "  ")
        (workdir / "soulwatch.yaml").write_text(
            f"auth:\n  tokens:\n    - name: rulers\n      token: {TOKEN}\n"
            f"      scopes: [alerts]\nalerting:\n{routing}"
        )
        (workdir / "alertmanager.yml").write_text(ROUTING.format(url=am_hooks.url))
        (workdir / "rules.yml").write_text(RULES)
        (workdir / "prometheus.yml").write_text(
            textwrap.dedent(
                f"""\
                global:
                  evaluation_interval: 1s
                  scrape_interval: 1s
                  scrape_timeout: 500ms
                rule_files: [rules.yml]
                scrape_configs:
                  - job_name: jobs
                    static_configs:
                      - targets: ["127.0.0.1:{exporter.port}"]
                alerting:
                  alertmanagers:
                    - authorization:
                        credentials: {TOKEN}
                      static_configs:
                        - targets: ["127.0.0.1:{sw_port}"]
                """
            )
        )
        with (
            soulwatch_peer(workdir / "soulwatch.yaml", port=sw_port, data_dir=workdir / "sw") as sw,
            alertmanager_peer(workdir / "alertmanager.yml", workdir / "am") as am,
            prometheus_peer(
                workdir / "prometheus.yml",
                workdir / "prom",
                flags=["--rules.alert.resend-delay=1s"],
            ) as prom,
        ):
            yield Peers(sw, am, prom, hooks, am_hooks, exporter, workdir)


def _amtool(peers: Peers, base: str, *args: str) -> str:
    amtool = need_binary("amtool")
    argv = [amtool, f"--alertmanager.url={base}", *args]
    if base == peers.soulwatch:
        config = peers.workdir / "amtool-http.yml"
        config.write_text(f"authorization:\n  credentials: {TOKEN}\n")
        argv.insert(1, f"--http.config.file={config}")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _paged(peers: Peers, alertname: str) -> list[Any]:
    return [
        r.json()
        for r in peers.hooks.received("/pager")
        if any(a["labels"]["alertname"] == alertname for a in r.json()["alerts"])
    ]


def test_prometheus_alerts_are_paged_through_soulwatch_routing(peers: Peers) -> None:
    [page, *_] = wait_until(lambda: _paged(peers, "BackendDown"), timeout=30, what="a page")
    assert page["receiver"] == "pager"
    assert page["status"] == "firing"
    assert page["groupLabels"] == {"alertname": "BackendDown"}
    [alert] = page["alerts"]
    assert alert["labels"] == {
        "alertname": "BackendDown",
        "severity": "page",
        "service": "backend",
    }
    assert alert["annotations"] == {"summary": "the backend is down"}
    port = peers.prometheus.rsplit(":", 1)[1]
    assert f":{port}/graph?g0.expr=" in alert["generatorURL"]
    # Prometheus sees soulwatch as its Alertmanager.
    ams = httpx.get(peers.prometheus + "/api/v1/alertmanagers", timeout=10).json()
    [active] = ams["data"]["activeAlertmanagers"]
    assert active["url"] == peers.soulwatch + "/api/v2/alerts"


def _hooked(peers: Peers, alertname: str, status: str) -> list[Any]:
    return [
        body
        for body in (r.json() for r in peers.hooks.received("/pager"))
        if body["status"] == status and body["groupLabels"] == {"alertname": alertname}
    ]


def test_a_prometheus_alert_resolves_through_soulwatch(peers: Peers) -> None:
    [firing, *_] = wait_until(
        lambda: _hooked(peers, "JobFailing", "firing"), timeout=30, what="JobFailing paged"
    )
    assert firing["alerts"][0]["labels"]["job"] == "jobs"
    peers.exporter.default = Reply(body=b"job_failed 0\n", headers={"Content-Type": "text/plain"})
    [resolved, *_] = wait_until(
        lambda: _hooked(peers, "JobFailing", "resolved"), timeout=30, what="JobFailing resolved"
    )
    assert resolved["alerts"][0]["status"] == "resolved"


def test_vmalert_sends_to_soulwatch(peers: Peers) -> None:
    vmalert = need_binary("vmalert")
    rules = peers.workdir / "vmalert-rules.yml"
    rules.write_text(
        "groups:\n  - name: vm\n    interval: 1s\n    rules:\n"
        "      - alert: FromVmalert\n        expr: vector(1) > 0\n"
        "        labels: {severity: page}\n"
    )
    port = free_port()
    argv = [
        vmalert,
        f"-rule={rules}",
        f"-datasource.url={peers.soulwatch}",
        f"-notifier.url={peers.soulwatch}",
        f"-notifier.bearerToken={TOKEN}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-evaluationInterval=1s",
    ]
    with started(argv, ready=ready_at(f"http://127.0.0.1:{port}", "/health"), timeout=60):
        [page, *_] = wait_until(
            lambda: _hooked(peers, "FromVmalert", "firing"), timeout=30, what="vmalert paged"
        )
    assert page["alerts"][0]["labels"]["alertname"] == "FromVmalert"
    assert page["receiver"] == "pager"


def test_posting_without_the_scope_is_refused(peers: Peers) -> None:
    body = [{"labels": {"alertname": "X"}}]
    assert httpx.post(peers.soulwatch + "/api/v2/alerts", json=body).status_code == 401


def test_invalid_alerts_are_400_like_alertmanager(peers: Peers) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for body in (
        [{"labels": {}}],
        [{"labels": {"1x": "a"}}],
        [
            {
                "labels": {"alertname": "Y"},
                "startsAt": "2030-01-01T00:00:00Z",
                "endsAt": "2029-01-01T00:00:00Z",
            }
        ],
    ):
        ours = httpx.post(peers.soulwatch + "/api/v2/alerts", json=body, headers=headers)
        theirs = httpx.post(peers.alertmanager + "/api/v2/alerts", json=body)
        assert ours.status_code == theirs.status_code == 400, (body, ours.text, theirs.text)
        assert isinstance(ours.json(), str)


def test_amtool_alert_query_lists_the_prometheus_alert(peers: Peers) -> None:
    def listed() -> list[Any]:
        out = json.loads(_amtool(peers, peers.soulwatch, "-o", "json", "alert", "query"))
        return [a for a in out if a["labels"]["alertname"] == "BackendDown"]

    [alert] = wait_until(listed, timeout=30, what="amtool alert query")
    assert alert["status"]["state"] == "active"
    assert [r["name"] for r in alert["receivers"]] == ["pager"]
    simple = _amtool(peers, peers.soulwatch, "alert", "query", "alertname=BackendDown")
    assert "BackendDown" in simple
    assert "the backend is down" in simple


def test_amtool_config_show_and_cluster_show(peers: Peers) -> None:
    shown = _amtool(peers, peers.soulwatch, "config", "show")
    assert "receiver: team" in shown
    assert "repeat_interval: 1h" in shown
    assert "<secret>" in shown
    assert peers.hooks.url not in shown
    theirs = _amtool(peers, peers.alertmanager, "cluster", "show")
    ours = _amtool(peers, peers.soulwatch, "cluster", "show")
    assert ours.splitlines()[0] == theirs.splitlines()[0]
    assert ours.splitlines()[0].split() == ["Cluster", "Status:", "disabled"]


def _same_alert(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert set(ours) == set(theirs)
    for key in ("labels", "annotations", "fingerprint", "status", "startsAt"):
        assert ours[key] == theirs[key], key
    assert sorted(r["name"] for r in ours["receivers"]) == sorted(
        r["name"] for r in theirs["receivers"]
    )


def test_the_same_alerts_read_back_as_from_alertmanager(peers: Peers) -> None:
    alerts = [
        "alertname=DiskFull service=db severity=page --start=2026-01-01T00:00:00Z",
        "alertname=DiskSlow service=db severity=info --start=2026-01-01T00:00:00Z",
        "alertname=CacheCold service=cache severity=info --start=2026-01-01T00:00:00Z",
    ]
    for line in alerts:
        args = line.split()
        for base in (peers.soulwatch, peers.alertmanager):
            _amtool(peers, base, "alert", "add", *args, "--annotation=runbook=https://x/y")

    def read(base: str, path: str, **params: Any) -> Any:
        return httpx.get(base + path, params=params, timeout=10).json()

    def db_alerts(base: str) -> list[Any]:
        got: list[Any] = read(base, "/api/v2/alerts", filter='alertname=~"Disk.*|CacheCold"')
        return got if len(got) == 3 else []

    ours = wait_until(lambda: db_alerts(peers.soulwatch), timeout=20, what="soulwatch alerts")
    theirs = wait_until(lambda: db_alerts(peers.alertmanager), timeout=20, what="am alerts")
    assert [a["fingerprint"] for a in ours] == [a["fingerprint"] for a in theirs]
    for mine, peer in zip(ours, theirs, strict=True):
        _same_alert(mine, peer)
    # DiskSlow is inhibited by DiskFull (same service); CacheCold is not.
    by_name = {a["labels"]["alertname"]: a for a in ours}
    assert by_name["DiskSlow"]["status"]["state"] == "suppressed"
    assert by_name["DiskSlow"]["status"]["inhibitedBy"] == [by_name["DiskFull"]["fingerprint"]]

    params = {"inhibited": "false", "filter": 'service="db"'}
    mine = [a["labels"]["alertname"] for a in read(peers.soulwatch, "/api/v2/alerts", **params)]
    peer = [a["labels"]["alertname"] for a in read(peers.alertmanager, "/api/v2/alerts", **params)]
    assert mine == peer == ["DiskFull"]
    params = {"receiver": "pager", "filter": 'service=~"db|cache"'}
    mine = [a["fingerprint"] for a in read(peers.soulwatch, "/api/v2/alerts", **params)]
    peer = [a["fingerprint"] for a in read(peers.alertmanager, "/api/v2/alerts", **params)]
    assert mine == peer

    def groups(base: str) -> list[tuple[Any, str, list[str]]]:
        found = read(base, "/api/v2/alerts/groups", filter='service=~"db|cache"')
        return sorted(
            (
                sorted(g["labels"].items()),
                g["receiver"]["name"],
                sorted(a["fingerprint"] for a in g["alerts"]),
            )
            for g in found
        )

    assert groups(peers.soulwatch) == groups(peers.alertmanager)
    [group, *_] = read(peers.soulwatch, "/api/v2/alerts/groups")
    assert set(group) == set(read(peers.alertmanager, "/api/v2/alerts/groups")[0])


def test_status_has_alertmanagers_shape(peers: Peers) -> None:
    ours = httpx.get(peers.soulwatch + "/api/v2/status", timeout=10).json()
    theirs = httpx.get(peers.alertmanager + "/api/v2/status", timeout=10).json()
    assert set(ours) == set(theirs)
    assert set(ours["versionInfo"]) == set(theirs["versionInfo"])
    assert ours["cluster"]["status"] == theirs["cluster"]["status"] == "disabled"
    assert "route:" in ours["config"]["original"]
    receivers = httpx.get(peers.soulwatch + "/api/v2/receivers", timeout=10).json()
    assert receivers == httpx.get(peers.alertmanager + "/api/v2/receivers", timeout=10).json()
