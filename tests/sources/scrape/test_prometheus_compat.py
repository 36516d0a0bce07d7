"""The same target scraped by soulwatch and by a real Prometheus stores the same series."""

from __future__ import annotations

import json
import math
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app

from soulwatch.clock import SimulatedClock
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager, load_prometheus_config
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Matcher, is_stale_nan
from tests.helpers import UvicornThread, free_port, need_binary, started
from tests.sources.support import HttpOnly

pytestmark = pytest.mark.slow


def _target_registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    requests = Counter("api_requests", "Requests.", ["method", "code"], registry=reg)
    requests.labels("GET", "200").inc(41)
    requests.labels("POST", "500").inc(3.5)
    latency = Histogram(
        "api_latency_seconds", "Latency.", ["route"], buckets=(0.1, 0.5, 2.0), registry=reg
    )
    for value in (0.05, 0.2, 0.2, 1.0, 3.0):
        latency.labels("/jobs").observe(value)
    Gauge("queue_depth", "Depth.", registry=reg).set(7)
    return reg


def _query(port: int, expr: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as resp:
        payload = json.load(resp)
    assert payload["status"] == "success", payload
    return list(payload["data"]["result"])


def _ready(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as resp:
        return bool(resp.status == 200)


def _values(got: dict[Labels, float], name: str) -> list[float]:
    return [v for k, v in got.items() if k.name == name]


def _prometheus_until(
    port: int, done: Callable[[dict[Labels, float]], bool], timeout: float = 20
) -> dict[Labels, float]:
    """Prometheus's current series of the job, polled (bounded) until ``done`` holds."""
    deadline = time.monotonic() + timeout
    got: dict[Labels, float] = {}
    while time.monotonic() < deadline:
        result = _query(port, '{job="compat"}')
        got = {Labels(r["metric"].items()): float(r["value"][1]) for r in result}
        if done(got):
            return got
        time.sleep(0.2)
    raise AssertionError(f"Prometheus never reached the expected state; last answer: {got}")


def _live(storage: MemoryStorage, job: str) -> dict[Labels, float]:
    """Series whose newest sample is not a staleness marker, with that sample's value."""
    out = {}
    for series in storage.select([Matcher.equal("job", job)], 0, 2**62):
        if not is_stale_nan(series.values[-1]):
            out[series.labels] = series.values[-1]
    return out


def _latest(storage: MemoryStorage, job: str) -> dict[Labels, float]:
    out = {}
    for series in storage.select([Matcher.equal("job", job)], 0, 2**62):
        values = [v for v in series.values if not is_stale_nan(v)]
        out[series.labels] = values[-1]
    return out


async def test_soulwatch_and_prometheus_store_the_same_series_and_values(
    clock: SimulatedClock,
) -> None:
    prometheus = need_binary("prometheus")
    with (
        UvicornThread(HttpOnly(make_asgi_app(_target_registry()))) as target,
        tempfile.TemporaryDirectory(prefix="soulwatch-prom-") as tmp,
    ):
        address = f"127.0.0.1:{target.port}"
        config = Path(tmp) / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: compat\n"
            f"    static_configs:\n      - targets: ['{address}']\n"
        )
        port = free_port()
        argv = [
            prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ]
        with started(argv, ready=lambda: _ready(port), timeout=30):
            # soulwatch reads the very same config text
            (cfg,) = load_prometheus_config(config.read_text()).resolved_scrape_configs()
            assert isinstance(cfg, ScrapeConfig)
            storage = MemoryStorage()
            manager = ScrapeManager([cfg], storage, clock=clock)
            manager.start()
            try:
                for _ in range(3):
                    await clock.advance(1)
                    await manager.settled()
                ours = _latest(storage, "compat")
                theirs = _prometheus_until(
                    port, lambda got: _values(got, "scrape_series_added") == [0.0]
                )  # Prometheus has scraped at least twice

                # phase 2: the target goes down; both mark its series stale, keep `up 0`
                target.stop()
                await clock.advance(1)
                await manager.settled()
                ours_down = _live(storage, "compat")
                theirs_down = _prometheus_until(port, lambda got: _values(got, "up") == [0.0])
            finally:
                await manager.stop()

    assert theirs, "Prometheus stored nothing"
    assert set(ours) == set(theirs), (
        f"only soulwatch: {sorted(set(ours) - set(theirs))}\n"
        f"only Prometheus: {sorted(set(theirs) - set(ours))}"
    )
    names = {labels.name for labels in ours}
    assert {"up", "api_requests_total", "api_latency_seconds_bucket"} <= names
    for labels, value in ours.items():
        if labels.name == "scrape_duration_seconds":
            continue
        other = theirs[labels]
        assert value == other or (math.isnan(value) and math.isnan(other)), (labels, value, other)
    bucket = Labels.of(
        __name__="api_latency_seconds_bucket",
        job="compat",
        instance=address,
        route="/jobs",
        le="0.5",
    )
    assert ours[bucket] == 3.0
    assert ours[Labels.of(__name__="up", job="compat", instance=address)] == 1.0

    report = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    report |= {"scrape_samples_post_metric_relabeling", "scrape_series_added"}
    assert {labels.name for labels in theirs_down} == report, "Prometheus: only report series"
    assert set(ours_down) == set(theirs_down)
    for labels, value in ours_down.items():
        if labels.name != "scrape_duration_seconds":
            assert value == theirs_down[labels], (labels, value, theirs_down[labels])
