"""Helpers shared by the scenario tests: the examples' folder and a file writer."""

from __future__ import annotations

import asyncio
from importlib.resources import files
from pathlib import Path

from soulwatch.scenario import ScenarioResult, load_scenario, run_scenario

EXAMPLES = Path(str(files("soulwatch.presets").joinpath("soulcaster", "scenarios")))
PRESET_CONFIG = EXAMPLES / "soulwatch.yaml"

#: 30 minutes of data for the preset's rules: Redis up, the backend's probe failing from 2m.
OUTAGE = """\
  - at: 0s
    interval: 15s
    samples:
      'probe_success{job="backend-health", instance="b"}': '1x7 0x112'
      'redis_up': '1x120'
"""


def write(tmp_path: Path, text: str, name: str = "case.scenario.yml") -> Path:
    """Write a scenario file (whose ``config`` is the Soulcaster scenarios' config)."""
    path = tmp_path / name
    path.write_text(text.replace("@CONFIG@", str(PRESET_CONFIG)))
    return path


def run(path: Path) -> ScenarioResult:
    """Load and run one scenario file."""
    return asyncio.run(run_scenario(load_scenario(path)))
