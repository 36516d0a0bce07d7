"""``soulwatch export prometheus``: the files load in Prometheus 2.42 and Alertmanager 0.25.

The Soulcaster preset (``soulwatch init``) exports as it is: ``promtool check
config`` reads prometheus.yml and every rule file, ``amtool check-config``
reads alertmanager.yml, and no secret value is written anywhere. A config
with parts Prometheus 2.42 would refuse exports without them, each named.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import yaml

from soulwatch.rules.loader import load_rule_files
from tests.helpers import need_binary, soulwatch_command, subprocess_env

SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/slack-secret-1",
    "PAGERDUTY_ROUTING_KEY": "pd-secret-2",
    "GITHUB_TOKEN": "gh-secret-3",
    "SOULWATCH_ADMIN_TOKEN": "admin-secret-4-long-enough",
    "SCRAPE_PASSWORD": "scrape-secret-5",
}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        soulwatch_command(*args),
        cwd=cwd,
        env=subprocess_env(**SECRETS),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _tool(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def _fill_secrets(out: Path, stdout: str) -> list[str]:
    """Create every file the export says to fill (as an operator would)."""
    line = next(x for x in stdout.splitlines() if x.startswith("fill in"))
    names = line.split(": ", 1)[1].split(", ")
    for name in names:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("value\n")
    return names


def _written_text(out: Path) -> str:
    return "".join(
        p.read_text() for p in out.rglob("*") if p.is_file() and "secrets" not in p.parts
    )


def test_the_soulcaster_preset_loads_in_promtool_and_amtool(tmp_path: Path) -> None:
    assert _cli("init", "-o", "soulwatch.yaml", cwd=tmp_path).returncode == 0
    run = _cli("export", "prometheus", "out", "-c", "soulwatch.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    secrets = _fill_secrets(out, run.stdout)
    assert set(secrets) == {"secrets/chat_slack_0_api_url", "secrets/page_pagerduty_0_routing_key"}
    text = _written_text(out)
    for value in SECRETS.values():
        assert value not in text

    check = _tool(need_binary("promtool"), "check", "config", "prometheus.yml", cwd=out)
    assert check.returncode == 0, check.stdout + check.stderr
    # Every rule of the pack, each file as soulwatch loads it.
    pack = sorted((tmp_path / "rules").glob("*.yml"))
    assert [p.name for p in pack] == sorted(p.name for p in (out / "rules").glob("*.yml"))
    assert len(pack) >= 5
    for path in pack:
        count = sum(len(g.rules) for g in load_rule_files([path]))
        assert f"Checking rules/{path.name}\n  SUCCESS: {count} rules found" in check.stdout
    am = _tool(need_binary("amtool"), "check-config", "alertmanager.yml", cwd=out)
    assert am.returncode == 0, am.stdout + am.stderr
    assert "github_configs is soulwatch-only" in run.stderr

    prometheus = yaml.safe_load((out / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in prometheus["scrape_configs"]}
    assert set(jobs) == {"soulwatch", "backend", "soulwatch-federate"}
    federate = jobs["soulwatch-federate"]
    assert federate["honor_labels"] is True
    assert '{job="backend-health"}' in federate["params"]["match[]"]
    assert '{instance="collector"}' in federate["params"]["match[]"]
    # The console's board, as a Grafana dashboard over the same queries.
    dashboard = json.loads((out / "grafana" / "soulcaster.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any("probe_success" in e for e in exprs)
    # The exporter config keeps the probes and collectors, and no rules or routing.
    exporter = yaml.safe_load((out / "soulwatch-exporter.yaml").read_text())
    assert {"probes", "collectors", "heartbeats"} <= set(exporter)
    assert not {"rule_files", "alerting", "scrape_configs"} & set(exporter)
    assert exporter["collectors"]["soulcaster"]["redis_url_env"] == "SOULCASTER_REDIS_URL"


RULES = """\
groups:
  - name: newer
    labels: {team: ops}
    rules:
      - alert: BackendDown
        expr: probe_success == 0
        no_data: keep_last
        recover_expr: probe_success == 1
      - record: job:smooth
        expr: double_exponential_smoothing(up[5m], 0.5, 0.5)
      - record: job:up
        expr: sum by (job) (up)
"""


def test_what_prometheus_2_42_refuses_is_left_out_and_named(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(RULES)
    (tmp_path / "soulwatch.yaml").write_text(
        "alerting:\n"
        "  route: {receiver: hook}\n"
        "  receivers: [{name: hook, webhook_configs: [{url: 'https://h.example/in?key=hook-secret-6'}]}]\n"
        "rule_files: [rules.yml]\n"
        "scrape_configs:\n"
        "  - job_name: api\n"
        "    series_limit: 1000\n"
        "    basic_auth: {username: u, password_env: SCRAPE_PASSWORD}\n"
        "    static_configs: [{targets: ['127.0.0.1:8000']}]\n"
    )
    run = _cli("export", "prometheus", "out", "-c", "soulwatch.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    out = tmp_path / "out"
    assert set(_fill_secrets(out, run.stdout)) == {
        "secrets/scrape_api_password",
        "secrets/hook_webhook_0_url",
    }
    for expected in (
        "group 'newer': labels does not load in Prometheus 2.42",
        "rule 'BackendDown': no_data is soulwatch-only",
        "rule 'BackendDown': recover_expr is soulwatch-only",
        "rule 'job:smooth' left out",
        "scrape job 'api': series_limit does not load in Prometheus 2.42",
        "receiver 'hook': a webhook's url_file needs Alertmanager 0.26 or later",
    ):
        assert expected in run.stderr
    assert "scrape-secret-5" not in _written_text(out)
    assert "hook-secret-6" not in _written_text(out)
    check = _tool(need_binary("promtool"), "check", "config", "prometheus.yml", cwd=out)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 2 rules found" in check.stdout  # BackendDown and job:up
    job = yaml.safe_load((out / "prometheus.yml").read_text())["scrape_configs"][0]
    assert job["basic_auth"] == {"username": "u", "password_file": "secrets/scrape_api_password"}
