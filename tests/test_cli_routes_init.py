"""``soulwatch init``, ``routes test`` and ``routes export`` on the generated soulwatch.yaml.

The docs and the generated config say ``soulwatch routes test -c
soulwatch.yaml`` and ``routes export -c soulwatch.yaml``: both must work on
the whole file, with or without the secrets set, and the export must never
contain a secret.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import need_binary, soulwatch_command, subprocess_env

SECRETS = {
    "SOULCASTER_REDIS_URL": "rediss://default:redis-pass-8c1d@eu1.upstash.example:6379",
    "UPSTASH_VECTOR_REST_URL": "https://vector.upstash.example",
    "UPSTASH_VECTOR_REST_TOKEN": "vector-token-5b2e",
    "E2B_API_KEY": "e2b-key-77aa",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.example/services/T01/B02/slackSecret0123456789",
    "PAGERDUTY_ROUTING_KEY": "pd-routing-key-4f3a9c",
    "GITHUB_TOKEN": "ghp-token-19ab",
    "SOULWATCH_ADMIN_TOKEN": "admin-token-0123456789abcdef",
}


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = subprocess_env()
    for name in SECRETS:
        base.pop(name, None)
    return subprocess.run(
        soulwatch_command(*args),
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    out = _cli("init", "--preset", "soulcaster", "-o", "soulwatch.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    return tmp_path


def test_init_writes_the_scenario_examples_and_they_pass(project: Path) -> None:
    scenarios = sorted(p.name for p in (project / "scenarios").glob("*.scenario.yml"))
    assert "backend_down.scenario.yml" in scenarios
    assert len(scenarios) >= 6
    run = _cli("test", "scenario", *[f"scenarios/{s}" for s in scenarios], cwd=project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{len(scenarios)} of {len(scenarios)} scenarios passed" in run.stdout


def test_init_points_the_scenarios_at_the_config_it_wrote(tmp_path: Path) -> None:
    out = _cli("init", "-o", "watch.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "scenarios" / "backend_down.scenario.yml").read_text()
    assert "config: ../watch.yaml" in text


def test_routes_test_reads_the_whole_soulwatch_yaml_without_secrets(project: Path) -> None:
    run = _cli(
        "routes", "test", "-c", "soulwatch.yaml", "--labels", "alertname=BackendDown,priority=P1",
        cwd=project,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "page,chat"
    assert "not set, read as placeholders: E2B_API_KEY, GITHUB_TOKEN" in run.stderr


def test_routes_test_with_the_secrets_set(project: Path) -> None:
    run = _cli(
        "routes", "test", "-c", "soulwatch.yaml", "--labels", "alertname=X,priority=P2",
        cwd=project, **SECRETS,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0] == "chat,ticket"
    assert run.stderr == ""


def test_routes_export_writes_file_references_not_secrets(project: Path) -> None:
    run = _cli(
        "routes", "export", "-c", "soulwatch.yaml", "-o", "alertmanager.yml",
        cwd=project, **SECRETS,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    exported = (project / "alertmanager.yml").read_text()
    for name, value in SECRETS.items():
        assert value not in exported, name
        assert value not in run.stderr, name
    assert "routing_key_file: secrets/page_pagerduty_0_routing_key" in exported
    assert "api_url_file: secrets/chat_slack_0_api_url" in exported
    assert (
        "page_pagerduty_0: routing_key written as routing_key_file: "
        "secrets/page_pagerduty_0_routing_key (put the value there)"
    ) in run.stderr
    check = subprocess.run(
        [need_binary("amtool"), "check-config", "alertmanager.yml"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_routes_export_of_an_alertmanager_yml_keeps_file_references(tmp_path: Path) -> None:
    (tmp_path / "am.yml").write_text(
        "route: {receiver: chat}\nreceivers:\n  - name: chat\n"
        "    slack_configs: [{api_url_file: /run/secrets/slack}]\n"
        "    webhook_configs:\n"
        "      - url: 'https://hooks.example/in?token=wh-secret-1'\n"
        "        http_config: {bearer_token: bearer-secret-2}\n"
        "      - url: 'http://127.0.0.1:9/plain'\n"
    )
    run = _cli("routes", "export", "-c", "am.yml", "--secrets-dir", "/etc/am", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "api_url_file: /run/secrets/slack" in run.stdout
    assert "wh-secret-1" not in run.stdout
    assert "bearer-secret-2" not in run.stdout
    assert "url_file: /etc/am/chat_webhook_0_url" in run.stdout
    assert "bearer_token_file: /etc/am/chat_webhook_0_bearer_token" in run.stdout
    assert "url: http://127.0.0.1:9/plain" in run.stdout


def test_routes_on_a_file_without_routing_says_so(tmp_path: Path) -> None:
    (tmp_path / "soulwatch.yaml").write_text("listen: 127.0.0.1:9797\n")
    run = _cli("routes", "test", "-c", "soulwatch.yaml", "--labels", "a=b", cwd=tmp_path)
    assert run.returncode == 2
    assert "soulwatch.yaml: no routing: the file has no alerting section" in run.stderr
