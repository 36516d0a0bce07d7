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

from tests.helpers import free_port, wait_until
from tests.peers import prometheus_peer, soulwatch_peer

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
    with (
        prometheus_peer(config, tmp_path / "prom") as prom,
        soulwatch_peer(config, data_dir=tmp_path / "sw") as sw,
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
