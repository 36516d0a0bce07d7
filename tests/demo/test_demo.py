"""The demo is the end-to-end test: every fault pages, reaches its receivers and resolves."""

from __future__ import annotations

import subprocess

import pytest

from soulwatch.demo.scenarios import SCENARIOS
from tests.helpers import need_binary, soulwatch_command, subprocess_env


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_every_scenario_fires_is_delivered_and_resolves() -> None:
    need_binary("redis-server")
    out = subprocess.run(
        soulwatch_command("demo", "--check"),
        capture_output=True, text=True, env=subprocess_env(), timeout=1400, check=False,
    )  # fmt: skip
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-6000:]
    for name in SCENARIOS:
        assert f"PASS  {name}:" in out.stdout, report[-6000:]
    assert f"{len(SCENARIOS)}/{len(SCENARIOS)} scenarios passed" in out.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_redis_outage_with_the_embedded_stand_in() -> None:
    out = subprocess.run(
        soulwatch_command("demo", "--check", "--embedded-redis", "--scenario", "redis-down"),
        capture_output=True, text=True, env=subprocess_env(), timeout=500, check=False,
    )  # fmt: skip
    assert out.returncode == 0, (out.stdout + out.stderr)[-6000:]
    assert "PASS  redis-down: RedisConnectionLoss paged after" in out.stdout
    assert "the console is at http://127.0.0.1:" in out.stdout


def test_unknown_scenario_is_a_usage_error_naming_the_choices() -> None:
    out = subprocess.run(
        soulwatch_command("demo", "--check", "--scenario", "nope"),
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 2
    assert "unknown scenario 'nope'" in out.stderr
    assert "backend-down" in out.stderr
