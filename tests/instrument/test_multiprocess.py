"""Multi-worker exposition: a real ``uvicorn --workers 2`` and dead workers' files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client import generate_latest

from soulwatch.instrument.multiprocess import collect_registry, compact
from tests.helpers import free_port, started, subprocess_env, wait_until
from tests.instrument.metrics_text import label_values, total


def _uvicorn(port: int, workers: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "tests.instrument.apps:served_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
        "--log-level", "warning",
    ]  # fmt: skip


def test_two_workers_report_the_sum_and_each_workers_process_metrics(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    with started(_uvicorn(port, 2), env=env, ready=lambda: httpx.get(url + "/health").is_success):
        # Both workers write their process metrics at startup.
        def both_workers() -> set[str] | None:
            text = httpx.get(url + "/metrics").text
            pids = label_values(text, "worker_resident_memory_bytes", "pid")
            return pids if len(pids) >= 2 else None

        pids = wait_until(both_workers, timeout=20, what="both workers' process metrics")
        served_by: set[str] = set()
        for i in range(40):
            # A new connection each time, so the kernel spreads them over both workers.
            with httpx.Client() as client:
                client.get(f"{url}/clusters/{i}")
        # Whichever worker answers the scrape, the total is the sum over both.
        for _ in range(8):
            with httpx.Client() as client:
                text = client.get(url + "/metrics").text
            assert total(text, "http_requests_total", route="/clusters/{cluster_id}") == 40
            assert total(text, "http_request_duration_seconds_count") == 40
            served_by |= label_values(text, "worker_resident_memory_bytes", "pid")
        assert pids <= served_by
        assert all(total(text, "worker_resident_memory_bytes", pid=pid) > 0 for pid in pids)

        # Kill one worker: uvicorn starts a new one; the dead one's counts stay in
        # the sum, its files are folded away, and its process series disappear.
        victim = sorted(pids)[0]
        os.kill(int(victim), signal.SIGKILL)

        def replaced() -> str | None:
            text = httpx.get(url + "/metrics").text
            live = label_values(text, "worker_resident_memory_bytes", "pid")
            return text if victim not in live and len(live) >= 2 else None

        text = wait_until(replaced, timeout=30, what="a replacement worker")
        assert total(text, "http_requests_total", route="/clusters/{cluster_id}") == 40
        assert not list(tmp_path.glob(f"*_{victim}.db"))
        assert list(tmp_path.glob("counter_archive.db"))


_WORKER = """
import sys
from prometheus_client import Counter, Gauge, Histogram
c = Counter("jobs", "jobs", ["kind"])
h = Histogram("lat", "lat", buckets=(0.1, 1.0))
g = Gauge("last", "last", multiprocess_mode="max")
live = Gauge("inflight", "inflight", multiprocess_mode="livesum")
n = int(sys.argv[1])
for _ in range(n):
    c.labels("agent").inc()
    h.observe(0.5)
g.set(n)
live.set(n)
"""


def _dead_worker(directory: Path, n: int) -> None:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(directory))
    subprocess.run([sys.executable, "-c", _WORKER, str(n)], env=env, check=True, timeout=60)


def test_dead_workers_files_are_folded_so_the_directory_stays_small(tmp_path: Path) -> None:
    for n in (3, 4, 5):
        _dead_worker(tmp_path, n)
    before = generate_latest(collect_registry(tmp_path)).decode()
    assert len(list(tmp_path.glob("*.db"))) == 12  # 3 processes x 4 metric files

    removed = compact(tmp_path)

    assert removed == 12
    after = generate_latest(collect_registry(tmp_path)).decode()
    assert (
        total(after, "jobs_total", kind="agent") == total(before, "jobs_total", kind="agent") == 12
    )
    assert total(after, "lat_bucket", le="1.0") == 12
    assert total(after, "lat_bucket", le="0.1") == 0
    assert total(after, "lat_sum") == 6.0
    assert total(after, "last") == 5  # max over the dead processes
    assert total(after, "inflight") == 0  # live* gauges of dead processes are gone
    # More dead workers: still one archive file per type, totals keep adding up.
    _dead_worker(tmp_path, 10)
    compact(tmp_path)
    final = generate_latest(collect_registry(tmp_path)).decode()
    assert total(final, "jobs_total") == 22
    assert total(final, "last") == 10
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db", "gauge_max_archive.db", "histogram_archive.db"
    ]  # fmt: skip


def test_files_of_live_processes_are_left_alone(tmp_path: Path) -> None:
    _dead_worker(tmp_path, 2)
    names = sorted(p.name for p in tmp_path.glob("*.db"))
    assert compact(tmp_path, alive=lambda pid: True) == 0
    assert sorted(p.name for p in tmp_path.glob("*.db")) == names
