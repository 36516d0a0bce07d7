"""`soulwatch run` as a process: reload on SIGHUP and POST /-/reload, clean stop on SIGTERM.

Also the `check config` and `init` commands, run as a user runs them.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers import free_port, soulwatch_command, started, subprocess_env, wait_until

pytestmark = pytest.mark.slow

TOKEN = "lifecycle-admin-token-0123"


def _write(path: Path, listen: int, checks: list[str]) -> None:
    items = "".join(f"\n    - {{name: {c}, period: 1h}}" for c in checks)
    path.write_text(
        f"listen: 127.0.0.1:{listen}\ndata_dir: data\n"
        f"heartbeats:\n  checks:{items or ' []'}\n"
        "auth:\n  tokens:\n    - {name: ops, token_env: LC_TOKEN, scopes: [admin]}\n"
    )


def _checks(base: str) -> list[str]:
    return [c["name"] for c in httpx.get(f"{base}/api/v1/heartbeats").json()["checks"]]


def _metric(base: str, name: str) -> float:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


def test_reload_and_clean_shutdown(tmp_path: Path) -> None:
    listen = free_port()
    base = f"http://127.0.0.1:{listen}"
    config = tmp_path / "soulwatch.yaml"
    _write(config, listen, ["poller"])
    ready = lambda: httpx.get(f"{base}/-/ready", timeout=1).status_code == 200  # noqa: E731
    argv = soulwatch_command("run", "-c", str(config))
    with started(argv, env=subprocess_env(LC_TOKEN=TOKEN), ready=ready, timeout=30) as proc:
        assert _checks(base) == ["poller"]

        # SIGHUP applies a good change.
        _write(config, listen, ["poller", "backup"])
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: _checks(base) == ["backup", "poller"], timeout=15, what="reload")

        # A bad config is rejected and the old one keeps running.
        config.write_text(config.read_text() + "heartbeat: {}\n")
        proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: _metric(base, "soulwatch_config_last_reload_successful") == 0,
            timeout=15,
            what="failed reload metric",
        )
        assert _checks(base) == ["backup", "poller"]
        r = httpx.post(f"{base}/-/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 400
        assert "unknown setting 'heartbeat'" in r.json()["error"]
        assert "did you mean 'heartbeats'" in r.json()["error"]
        assert httpx.post(f"{base}/-/reload").status_code == 401

        # POST /-/reload applies a fixed file.
        _write(config, listen, ["poller"])
        r = httpx.post(f"{base}/-/reload", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        assert _checks(base) == ["poller"]

        # SIGTERM: a clean, bounded stop.
        started_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert time.monotonic() - started_at < 20


def _cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        soulwatch_command(*args),
        capture_output=True,
        text=True,
        env=subprocess_env(**env),
        cwd=cwd,
        timeout=60,
        check=False,
    )


#: The variables the Soulcaster preset reads its secrets from.
PRESET_ENV = {
    "SOULCASTER_REDIS_URL": "redis://127.0.0.1:6379/0",
    "UPSTASH_VECTOR_REST_URL": "http://127.0.0.1:1",
    "UPSTASH_VECTOR_REST_TOKEN": "vector-token",
    "E2B_API_KEY": "e2b-key",
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:2/slack",
    "PAGERDUTY_ROUTING_KEY": "pd-routing-key",
    "GITHUB_TOKEN": "gh-token",
    "SOULWATCH_ADMIN_TOKEN": "0123456789abcdef0123",
}


def test_init_writes_the_soulcaster_preset_that_checks_clean(tmp_path: Path) -> None:
    out = _cli("init", "--preset", "soulcaster", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "soulwatch.yaml").read_text().startswith("# soulwatch.yaml")
    rules = sorted(p.name for p in (tmp_path / "rules").glob("*.yml"))
    assert rules == ["agents.yml", "backend.yml", "meta.yml", "platform.yml", "rum.yml"]
    again = _cli("init", cwd=tmp_path)
    assert again.returncode == 2
    assert "exists" in again.stderr
    # Secrets come only from the environment: without them the check names every one at once.
    bare = _cli("check", "config", "soulwatch.yaml", cwd=tmp_path)
    assert bare.returncode == 2
    assert f"{len(PRESET_ENV)} environment variables are not set" in bare.stderr
    for name in PRESET_ENV:
        assert f"  {name} (line " in bare.stderr
    assert "soulwatch.yaml:" in bare.stderr
    check = _cli("check", "config", "soulwatch.yaml", cwd=tmp_path, **PRESET_ENV)
    assert check.returncode == 0, check.stderr
    # soulwatch, backend (the dashboard has no /api/metrics at the commit the preset targets).
    groups = sum(
        len(yaml.safe_load(p.read_text())["groups"]) for p in (tmp_path / "rules").glob("*.yml")
    )
    assert check.stdout.startswith(f"soulwatch.yaml: OK (2 scrape job(s), {groups} rule group(s)")
    assert "routing on" in check.stdout
    tests = sorted(str(p) for p in (tmp_path / "rules" / "tests").glob("*.yml"))
    assert len(tests) >= 12
    unit = _cli("test", "rules", *tests, cwd=tmp_path)
    assert unit.returncode == 0, unit.stdout[-3000:]


def test_check_config_reports_file_line_column(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "global:\n  scrape_interval: 15s\n  evaluaton_interval: 1m\n"
    )
    out = _cli("check", "config", "bad.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "soulwatch: error: bad.yaml:3:3: unknown setting 'evaluaton_interval' in global"
        " (did you mean 'evaluation_interval'?)"
    )


def test_check_config_reports_a_bad_rule_file(tmp_path: Path) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum(\n"
    )
    (tmp_path / "sw.yaml").write_text("rule_files: [rules.yml]\n")
    out = _cli("check", "config", "sw.yaml", cwd=tmp_path)
    assert out.returncode == 2
    assert "rules.yml:5" in out.stderr
