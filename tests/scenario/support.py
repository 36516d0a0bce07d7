"""Helpers shared by the scenario tests: the examples' folder and a file writer."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from pathlib import Path

from soulwatch.scenario import ScenarioResult, load_scenario, run_scenario

EXAMPLES = Path(str(files("soulwatch.presets").joinpath("soulcaster", "scenarios")))
PRESET_CONFIG = EXAMPLES.parent / "soulwatch.yaml"

#: Placeholders for the secrets the preset's configuration reads from the environment.
PRESET_ENV = (
    "env: {PAGERDUTY_ROUTING_KEY: k, SLACK_WEBHOOK_URL: 'https://hooks.slack.example/x',"
    " GITHUB_TOKEN: t, SOULCASTER_REDIS_URL: 'redis://127.0.0.1:6379', E2B_API_KEY: e,"
    " UPSTASH_VECTOR_REST_URL: 'https://vector.example', UPSTASH_VECTOR_REST_TOKEN: v,"
    " SOULWATCH_ADMIN_TOKEN: admin-token-0123456789}\n"
)

#: 30 minutes of data for the preset's rules: Redis up, the backend's probe failing from 2m.
OUTAGE = """\
  - at: 0s
    interval: 15s
    samples:
      'probe_success{job="backend-health", instance="b"}': '1x7 0x112'
      'redis_up': '1x120'
"""


def write(tmp_path: Path, text: str, name: str = "case.scenario.yml", *, env: bool = True) -> Path:
    """Write a scenario file; ``@CONFIG@`` is the preset's configuration.

    The preset's ``env`` placeholders go last, so the lines of ``text`` keep their numbers.
    """
    path = tmp_path / name
    path.write_text(text.replace("@CONFIG@", str(PRESET_CONFIG)) + (PRESET_ENV if env else ""))
    return path


def run(path: Path) -> ScenarioResult:
    """Load and run one scenario file."""
    return asyncio.run(run_scenario(load_scenario(path)))
