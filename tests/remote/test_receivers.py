"""Remote write to real receivers: after a run, the same queries answer the same everywhere.

soulwatch scrapes itself every second and writes to a real Prometheus 2.42
(``--web.enable-remote-write-receiver``) and a real VictoriaMetrics at once.
The second test takes the receivers down for seconds, ``kill -9``s soulwatch
during the outage, restarts it, brings the receivers back: every sample
arrives, and none twice (Prometheus answers 400 to a resent older sample,
which would show as a missing one).
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx

from tests.helpers import free_port
from tests.remote.receivers import (
    PrometheusReceiver,
    VictoriaMetricsReceiver,
    kill,
    queue_metric,
    soulwatch_answers,
    soulwatch_config,
    soulwatch_running,
    stop,
    wait_for_same,
)

# Counts and values of every series soulwatch scraped from itself; windows
# wider than the run so no engine's window-edge rule matters.
QUERIES = [
    'count(last_over_time({job="self"}[10m]))',
    "sum(count_over_time(up[10m]))",
    "sum(count_over_time(scrape_samples_scraped[10m]))",
    "sum(count_over_time(scrape_duration_seconds[10m]))",
    "sum(count_over_time(soulwatch_build_info[10m]))",
    "sum(sum_over_time(scrape_samples_scraped[10m]))",
    'count(last_over_time({__name__=~"soulwatch_tsdb_.+"}[10m]))',
    "sum by (job, instance) (count_over_time(soulwatch_tsdb_head_series[10m]))",
]


def test_same_answers_on_soulwatch_prometheus_and_victoriametrics(tmp_path: Path) -> None:
    prom = PrometheusReceiver(tmp_path)
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    config = soulwatch_config(tmp_path, [prom, vm], listen_port=port)
    with prom.running(), vm.running():
        with soulwatch_running(config, port) as proc:
            time.sleep(6)
            stop(proc)
        t = time.time() + 1
        mine = soulwatch_answers(tmp_path, QUERIES, t)
        assert mine["sum(count_over_time(up[10m]))"][0][1] >= 4  # it did scrape, every second
        # A receiver makes what it was sent searchable a moment later (VictoriaMetrics
        # flushes its in-memory parts): wait, bounded, for the same answers.
        wait_for_same(mine, prom, QUERIES, t, 15)
        wait_for_same(mine, vm, QUERIES, t, 15)


def test_outage_and_kill_9_lose_nothing_and_send_nothing_twice(tmp_path: Path) -> None:
    prom = PrometheusReceiver(tmp_path)
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    config = soulwatch_config(tmp_path, [prom, vm], listen_port=port)
    with contextlib.ExitStack() as outage:
        outage.enter_context(prom.running())
        outage.enter_context(vm.running())
        with soulwatch_running(config, port) as proc:
            time.sleep(3)
            outage.close()  # both receivers go down; soulwatch keeps scraping and retrying
            time.sleep(4)
            kill(proc)
    with soulwatch_running(config, port) as proc:
        time.sleep(2)  # still no receiver: the restarted soulwatch retries
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        for kind in ("prometheus", "victoria-metrics"):
            assert (
                queue_metric(metrics, "prometheus_remote_storage_samples_retried_total", kind) > 0
            )
            assert queue_metric(metrics, "prometheus_remote_storage_samples_total", kind) == 0
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
        assert all("ConnectError" in q["last_error"] for q in health["remote_write"]), health
        with prom.running(), vm.running():
            time.sleep(3)  # receivers back: the backlog and new samples flow
            stop(proc)
            t = time.time() + 1
            mine = soulwatch_answers(tmp_path, QUERIES, t)
            scrapes = mine["sum(count_over_time(up[10m]))"][0][1]
            assert scrapes >= 8  # scraped before, during and after the outage
            wait_for_same(mine, vm, QUERIES, t, 20)
            wait_for_same(mine, prom, QUERIES, t, 5)
