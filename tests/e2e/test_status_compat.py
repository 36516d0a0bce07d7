"""One prometheus.yml, run by Prometheus 2.42 and by `soulwatch run`: the same status answers.

The same file (global, rule_files, scrape_configs) is given to both, which
is also the proof that those sections load unchanged. Once both have
evaluated the rules, ``/api/v1/rules``, ``/api/v1/alerts`` and
``/api/v1/targets`` must have the same shape and the same rule, alert and
target facts.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import (
    free_port,
    need_binary,
    soulwatch_command,
    started,
    subprocess_env,
    wait_until,
)

pytestmark = pytest.mark.slow

RULES = """\
groups:
  - name: demo
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetDown
        expr: up == 0
        for: 1h
        labels:
          severity: page
        annotations:
          summary: '{{ $labels.instance }} is down'
      - alert: AlwaysOn
        expr: vector(1)
        labels:
          severity: info
"""


def _json(base: str, path: str) -> Any:
    body = httpx.get(base + path, timeout=10).json()
    assert body["status"] == "success", body
    return body["data"]


def _evaluated(base: str) -> bool:
    groups = _json(base, "/api/v1/rules")["groups"]
    if not groups:
        return False
    rules = {r["name"]: r for r in groups[0]["rules"]}
    targets = _json(base, "/api/v1/targets")["activeTargets"]
    return (
        rules["TargetDown"]["state"] == "pending"
        and rules["AlwaysOn"]["state"] == "firing"
        and rules["job:up:sum"]["health"] == "ok"
        and bool(targets)
        and targets[0]["health"] == "down"
    )


def test_rules_alerts_and_targets_match_prometheus(tmp_path: Path) -> None:
    binary = need_binary("prometheus")
    (tmp_path / "rules.yml").write_text(RULES)
    dead = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            global:
              scrape_interval: 1s
              scrape_timeout: 500ms
              evaluation_interval: 1s
            rule_files:
              - rules.yml
            scrape_configs:
              - job_name: gone
                static_configs:
                  - targets: ["127.0.0.1:{dead}"]
                    labels: {{team: core}}
            """
        )
    )
    prom_port, sw_port = free_port(), free_port()
    prom, sw = f"http://127.0.0.1:{prom_port}", f"http://127.0.0.1:{sw_port}"
    prom_argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'prom'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
    ]
    sw_argv = soulwatch_command(
        "run",
        "-c",
        str(config),
        "--data-dir",
        str(tmp_path / "sw"),
        "--listen",
        f"127.0.0.1:{sw_port}",
    )
    ready = lambda base: lambda: httpx.get(f"{base}/-/ready", timeout=1).status_code == 200  # noqa: E731
    with (
        started(prom_argv, ready=ready(prom), timeout=60),
        started(sw_argv, env=subprocess_env(), ready=ready(sw), timeout=60),
    ):
        wait_until(lambda: _evaluated(prom), timeout=30, what="prometheus evaluated")
        wait_until(lambda: _evaluated(sw), timeout=30, what="soulwatch evaluated")

        theirs, ours = _json(prom, "/api/v1/rules"), _json(sw, "/api/v1/rules")
        [tg], [og] = theirs["groups"], ours["groups"]
        assert set(og) >= set(tg) - {"limit"}
        assert (og["name"], og["interval"]) == (tg["name"], tg["interval"])
        assert Path(og["file"]).name == Path(tg["file"]).name
        for trule, orule in zip(tg["rules"], og["rules"], strict=True):
            assert set(orule) == set(trule), (orule, trule)
            for key in (
                "name",
                "query",
                "labels",
                "health",
                "type",
                "annotations",
                "state",
                "duration",
            ):
                assert orule.get(key) == trule.get(key), key
            for talert, oalert in zip(
                trule.get("alerts", []), orule.get("alerts", []), strict=True
            ):
                assert set(oalert) == set(talert)
                assert oalert["labels"] == talert["labels"]
                assert oalert["state"] == talert["state"]
                assert oalert["value"] == talert["value"]

        tal = sorted(
            _json(prom, "/api/v1/alerts")["alerts"], key=lambda a: a["labels"]["alertname"]
        )
        oal = sorted(_json(sw, "/api/v1/alerts")["alerts"], key=lambda a: a["labels"]["alertname"])
        assert [set(a) for a in oal] == [set(a) for a in tal]
        assert [(a["labels"], a["state"], a["annotations"]) for a in oal] == [
            (a["labels"], a["state"], a["annotations"]) for a in tal
        ]

        [tt] = _json(prom, "/api/v1/targets")["activeTargets"]
        [ot] = _json(sw, "/api/v1/targets")["activeTargets"]
        assert set(ot) == set(tt)
        for key in (
            "labels",
            "scrapePool",
            "scrapeUrl",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        ):
            assert ot[key] == tt[key], key
        assert ot["lastError"]
