"""benchmarks/alert_latency.py: its configs load in every system it runs; its receiver works."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import yaml

from benchmarks import alert_latency as bench
from soulwatch.config import load_config
from soulwatch.rules.loader import load_rule_files
from tests.helpers import need_binary


def _write(path: Path, doc: dict[str, object]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_prometheus_and_soulwatch_load_the_same_rule_and_intervals(tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    prom = _write(tmp_path / "prometheus.yml", bench.prometheus_config(8000, [9093, 9094]))
    checked = subprocess.run(
        [promtool, "check", "config", str(prom)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 rules found" in checked.stdout + checked.stderr

    sw = _write(
        tmp_path / "soulwatch.yaml",
        bench.soulwatch_config(9797, tmp_path / "data", 8000, "http://127.0.0.1:1/"),
    )
    config = load_config(sw)
    assert config.global_.scrape_interval == bench.SCRAPE_S
    assert config.global_.evaluation_interval == bench.EVAL_S
    assert config.rule_paths() == [bench.RULES]
    [group] = load_rule_files([bench.RULES])
    [rule] = group.rules
    assert (rule.name, rule.for_s) == (bench.ALERTNAME, bench.rule_for_s())


def test_alertmanager_configs_differ_only_in_group_wait(tmp_path: Path) -> None:
    amtool = need_binary("amtool")
    defaults = bench.alertmanager_config("http://127.0.0.1:1/", page_group_wait=None)
    zero = bench.alertmanager_config("http://127.0.0.1:1/", page_group_wait="0s")
    for name, doc in (("defaults.yml", defaults), ("zero.yml", zero)):
        path = _write(tmp_path / name, doc)
        checked = subprocess.run(
            [amtool, "check-config", str(path)],
            check=False,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "group_wait" not in str(defaults)
    assert zero["route"]["routes"][0]["group_wait"] == "0s"


def test_receiver_timestamps_pages_of_the_benchmark_alert() -> None:
    payload = {
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "Other"}},
            {
                "status": "firing",
                "labels": {"alertname": bench.ALERTNAME},
                "startsAt": "2026-11-26T23:00:00.123456789Z",
            },
        ],
    }
    with bench.Receiver("test") as receiver:
        assert receiver.first("firing") is None
        httpx.post(receiver.url, json=payload, timeout=5).raise_for_status()
        page = receiver.first("firing")
        assert page is not None
        # Go's nanoseconds are cut to microseconds; an offset zone means the same instant.
        assert abs(page.starts_at - 1795734000.123456) < 1e-6
        assert page.starts_at == bench.rfc3339("2026-11-27T00:00:00.123456+01:00")
        assert receiver.first("resolved") is None
        receiver.clear()
        assert receiver.first("firing") is None
