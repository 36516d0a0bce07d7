"""Against a real Alertmanager: forwarding alerts, and the silence CLI on its v2 API."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from soulwatch.cli import main
from tests.alerting.support import alert, harness
from tests.helpers import free_port, need_binary, started

AM_CONFIG = """
route:
  receiver: devnull
receivers:
  - name: devnull
"""


@contextlib.contextmanager
def _alertmanager(tmp_path: Path, config: str = AM_CONFIG) -> Iterator[str]:
    binary = need_binary("prometheus-alertmanager")
    port = free_port()
    cfg = tmp_path / "am.yml"
    cfg.write_text(config)
    url = f"http://127.0.0.1:{port}"
    argv = [
        binary,
        f"--config.file={cfg}",
        f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    with started(argv, ready=lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200):
        yield url


@pytest.mark.slow
async def test_forwarded_alerts_appear_in_alertmanager(tmp_path, clock):
    with _alertmanager(tmp_path) as am:
        cfg = f"""
route:
  receiver: am
  group_wait: 0s
receivers:
  - name: am
    alertmanager_configs: [{{url: "{am}"}}]
"""
        async with harness(cfg, tmp_path, clock) as h:
            now = time.time()  # Alertmanager compares with its own wall clock
            clock.set_time(max(clock.time(), now))
            await h.send(
                alert(clock.time() - 60, alertname="BackendDown", priority="P1", job="backend"),
                alert(clock.time() - 60, alertname="RedisDown", priority="P1", job="redis"),
            )
            async with httpx.AsyncClient() as client:
                got = (await client.get(f"{am}/api/v2/alerts")).json()
    by_name = {a["labels"]["alertname"]: a for a in got}
    assert set(by_name) == {"BackendDown", "RedisDown"}
    assert by_name["BackendDown"]["labels"] == {
        "alertname": "BackendDown",
        "priority": "P1",
        "job": "backend",
    }
    assert by_name["BackendDown"]["status"]["state"] == "active"
    assert by_name["BackendDown"]["annotations"]["summary"] == "BackendDown is broken"


@pytest.mark.slow
def test_silence_cli_against_alertmanager(tmp_path, capsys):
    with _alertmanager(tmp_path) as am:
        code = main(
            [
                "silence",
                "--url",
                am,
                "add",
                "alertname=BackendDown",
                'env=~"prod|stage"',
                "-d",
                "2h",
                "-a",
                "alice",
                "-m",
                "deploy",
            ]
        )
        assert code == 0
        silence_id = capsys.readouterr().out.strip()
        listed = httpx.get(f"{am}/api/v2/silence/{silence_id}").json()
        assert listed["createdBy"] == "alice"
        assert listed["status"]["state"] == "active"
        assert {(m["name"], m["value"], m["isRegex"]) for m in listed["matchers"]} == {
            ("alertname", "BackendDown", False),
            ("env", "prod|stage", True),
        }
        assert main(["silence", "list", "--url", am]) == 0
        out = capsys.readouterr().out
        assert silence_id in out
        assert "active" in out
        assert "deploy" in out
        assert main(["silence", "--url", am, "expire", silence_id]) == 0
        capsys.readouterr()
        assert httpx.get(f"{am}/api/v2/silence/{silence_id}").json()["status"]["state"] == "expired"
        assert main(["silence", "--url", am, "expire", "no-such-id"]) == 2
        assert "HTTP" in capsys.readouterr().err


def test_routes_test_cli(tmp_path, capsys):
    from tests.alerting.test_routing import DOCS_EXAMPLE

    path = tmp_path / "am.yml"
    path.write_text(DOCS_EXAMPLE)
    assert main(["routes", "test", "--labels", "priority=P1,env=prod", "-c", str(path)]) == 0
    assert capsys.readouterr().out == "page,chat\n"
    assert main(["routes", "test", "--labels", "priority=~P1", "-c", str(path)]) == 2
    bad = tmp_path / "bad.yml"
    bad.write_text("route:\n  reciever: x\n")
    assert main(["routes", "test", "--labels", "a=b", "-c", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yml:2:3" in err
    assert 'did you mean "receiver"' in err


INHIBIT_AM = """
route:
  receiver: devnull
receivers:
  - name: devnull
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity="warning"]
    equal: [alertname, cluster, service]
"""

INHIBIT_CASES = [
    {"alertname": "Disk", "severity": "critical", "cluster": "eu", "service": "db"},
    {"alertname": "Disk", "severity": "warning", "cluster": "eu", "service": "db"},
    {"alertname": "Disk", "severity": "warning", "cluster": "us", "service": "db"},
    {"alertname": "Cpu", "severity": "warning", "cluster": "eu", "service": "db"},
    {"alertname": "Net", "severity": "critical", "cluster": "eu"},
    {"alertname": "Net", "severity": "warning", "cluster": "eu"},
    {"alertname": "Net", "severity": "warning", "cluster": "eu", "service": "web"},
    {"alertname": "Net", "severity": "info", "cluster": "eu"},
]


@pytest.mark.slow
def test_inhibition_agrees_with_alertmanager(tmp_path):
    from soulwatch.alerting.config import parse_config
    from soulwatch.alerting.inhibit import Inhibitor
    from soulwatch.alerts import Alert
    from soulwatch.tsdb.model import Labels

    now = time.time()
    alerts = [Alert(Labels.of(c), {}, now - 60) for c in INHIBIT_CASES]
    inhibitor = Inhibitor(parse_config(INHIBIT_AM).inhibit_rules)
    ours = {a.fingerprint for a in alerts if inhibitor.is_inhibited(a, alerts, now)}
    with _alertmanager(tmp_path, INHIBIT_AM) as am:
        httpx.post(
            f"{am}/api/v2/alerts", json=[{"labels": c} for c in INHIBIT_CASES]
        ).raise_for_status()
        got = httpx.get(f"{am}/api/v2/alerts").json()
    theirs = {a["fingerprint"] for a in got if a["status"]["inhibitedBy"]}
    assert len(got) == len(INHIBIT_CASES)
    assert ours == theirs
    names = {a.fingerprint: a.labels.to_dict() for a in alerts}
    assert sorted((names[f]["alertname"], names[f].get("service", "")) for f in ours) == [
        ("Disk", "db"),
        ("Net", ""),
    ]


def test_routes_export_cli_writes_a_file_amtool_accepts(tmp_path, capsys):
    from tests.alerting.test_routing import FULL

    src = tmp_path / "soulwatch-routing.yml"
    src.write_text(FULL)
    out = tmp_path / "alertmanager.yml"
    assert main(["routes", "export", "-c", str(src), "-o", str(out)]) == 0
    assert "github_configs is soulwatch-only" in capsys.readouterr().err
    check = subprocess.run(
        [need_binary("amtool"), "check-config", str(out)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
