"""A two-hour scenario (rules and routing) beside promtool running the same rules and data.

soulwatch: ``load_scenario`` + ``run_scenario`` of a two-hour timeline on the
Soulcaster preset's own ``soulwatch.yaml`` (its rule pack and routing): a
backend outage from 30m to 40m, Redis up, request counters, a silence; the
expectations hold (the run is checked). This is rules **and** routing,
grouping, the outbox and the notifiers, on a simulated clock.
promtool: ``promtool test rules`` over the same rule files, the same input
series and a 15 s evaluation interval up to 2h: rules only (promtool has no
routing), the nearest peer. Both are timed as wall time of a whole run
(soulwatch in-process from loading the file, promtool as a subprocess,
so its process start counts); each side reports the
median of ``--reps`` runs and the spread (min-max).

Usage: ``PYTHONPATH=src python benchmarks/scenario.py [--reps 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from soulwatch.scenario import load_scenario, run_scenario

PRESET = Path(__file__).resolve().parent.parent / "src" / "soulwatch" / "presets" / "soulcaster"

SERIES = {
    'probe_success{job="backend-health", instance="http://backend:8000/health"}': (
        "1x119 0x40 1x320"
    ),
    "redis_up": "1x480",
    'http_requests_total{job="backend", status="200"}': "0+12x480",
    'http_requests_total{job="backend", status="500"}': "0x480",
}

SCENARIO = f"""\
name: two hours, one outage
config: {PRESET / "soulwatch.yaml"}
env:
  PAGERDUTY_ROUTING_KEY: k
  SLACK_WEBHOOK_URL: https://hooks.slack.example/x
  GITHUB_TOKEN: t
  SOULCASTER_REDIS_URL: redis://127.0.0.1:6379
  E2B_API_KEY: e
  SOULWATCH_ADMIN_TOKEN: admin-token-0123456789
timeline:
  - at: 0s
    interval: 15s
    samples:
{"".join(f"      '{k}': '{v}'" + chr(10) for k, v in SERIES.items())}
  - at: 29m
    expect_none: true
  - at: 35m
    expect:
      - {{receiver: page, status: firing, alertname: BackendDown, between: [32m, 32m15s]}}
      - {{receiver: chat, status: firing, alertname: BackendDown, between: [32m, 32m15s]}}
  - at: 50m
    expect:
      - {{receiver: page, status: resolved, alertname: BackendDown, between: [40m, 47m30s]}}
      - {{receiver: chat, status: resolved, alertname: BackendDown, between: [40m, 47m30s]}}
  - at: 1h
    silence: {{matchers: ['alertname="BackendDown"'], duration: 30m}}
  - at: 2h
    expect_none: true
"""

PROMTOOL_TEST = f"""\
rule_files: [{", ".join(str(p) for p in sorted((PRESET / "rules").glob("*.yml")))}]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
{"".join(f"      - {{series: '{k}', values: '{v}'}}" + chr(10) for k, v in SERIES.items())}
    alert_rule_test:
      - eval_time: 2h
        alertname: BackendDown
        exp_alerts: []
"""


def _soulwatch(path: Path) -> float:
    started = time.perf_counter()
    scenario = load_scenario(path)
    result = asyncio.run(run_scenario(scenario))
    elapsed = time.perf_counter() - started
    if not result.ok:
        problems = [p for s in result.steps for p in s.problems]
        raise SystemExit(f"the benchmark scenario failed: {problems}")
    return elapsed


def _promtool(path: Path) -> float:
    started = time.perf_counter()
    proc = subprocess.run(
        ["promtool", "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"promtool failed: {proc.stdout}{proc.stderr}")
    return elapsed


def _row(name: str, times: list[float]) -> str:
    return (
        f"| {name} | {statistics.median(times) * 1000:.0f} ms"
        f" | {min(times) * 1000:.0f}-{max(times) * 1000:.0f} ms |"
    )


def main() -> None:
    """Run both sides ``--reps`` times and print a Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scenario = Path(tmp) / "two_hours.scenario.yml"
        scenario.write_text(SCENARIO)
        test_file = Path(tmp) / "two_hours.test.yml"
        test_file.write_text(PROMTOOL_TEST)
        ours = [_soulwatch(scenario) for _ in range(args.reps)]
        theirs = (
            [_promtool(test_file) for _ in range(args.reps)] if shutil.which("promtool") else []
        )
    print(f"2-hour timeline, {args.reps} runs each (median, min-max):\n")
    print("| run | median | spread |")
    print("|---|---|---|")
    print(_row("soulwatch test scenario (rules + routing + delivery)", ours))
    if theirs:
        print(_row("promtool test rules (rules only)", theirs))
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"\nratio soulwatch / promtool: {ratio:.2f}")
    else:
        print("\npromtool not installed: no peer run", file=sys.stderr)


if __name__ == "__main__":
    main()
