"""Remote write: samples per CPU-second sent by soulwatch and by Prometheus to one VictoriaMetrics.

Measures:

* soulwatch: a WAL backlog of ``--scrapes`` scrapes of 10,000 series (four
  labels each) is sent by a :class:`RemoteWriteManager` with Prometheus's
  default ``queue_config`` to a real VictoriaMetrics; samples per CPU-second of
  this process (reading the WAL, encoding, snappy, HTTP) until the receiver
  acknowledged everything.
* Prometheus 2.42: scraping the same 10,000 series every second for
  ``--prometheus-seconds``, once without and once with ``remote_write`` to the
  same VictoriaMetrics; the extra CPU per sample sent is what remote write
  costs it (its ``process_cpu_seconds_total`` and
  ``prometheus_remote_storage_samples_total``).
* soulwatch's send lag: 10,000 series committed every ``--interval`` seconds
  (15 by default); the time from a commit to the receiver acknowledging its
  newest sample (``queue_highest_sent_timestamp_seconds`` reaching it).

CPU time, not wall time: on a shared machine the wall clock measures the
neighbours as much as the code.

Run: ``.venv/bin/python benchmarks/remote_write.py [--scrapes 30] [--interval 15]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from prometheus_client import CollectorRegistry  # noqa: E402

from scrape_ingest import SERVER, exposition, own_metrics, socket_port  # noqa: E402
from soulwatch.clock import SystemClock  # noqa: E402
from soulwatch.remote.config import RemoteWriteConfig  # noqa: E402
from soulwatch.remote.manager import RemoteWriteManager  # noqa: E402
from soulwatch.tsdb.config import StorageConfig  # noqa: E402
from soulwatch.tsdb.db import TSDB  # noqa: E402
from soulwatch.tsdb.model import Labels  # noqa: E402

SERIES = 10_000


def series_labels() -> list[Labels]:
    """10,000 distinct label sets shaped like a service's metrics."""
    return [
        Labels.of(
            __name__=f"http_requests_total_{i % 20}",
            job="backend",
            instance=f"10.0.{i // 250}.{i % 250}:8000",
            route=f"/api/v1/resource{i % 500}",
            code=str(200 + i % 4),
        )
        for i in range(SERIES)
    ]


@contextlib.contextmanager
def victoria_metrics() -> Iterator[str]:
    """A VictoriaMetrics on a free port; yields its base URL."""
    binary = shutil.which("victoria-metrics")
    if binary is None:
        raise SystemExit("victoria-metrics is not installed (Debian package victoria-metrics)")
    with tempfile.TemporaryDirectory(prefix="bench-vm-") as tmp, socket_port() as port:
        proc = subprocess.Popen(
            [
                binary,
                f"-httpListenAddr=127.0.0.1:{port}",
                f"-storageDataPath={tmp}",
                "-loggerLevel=ERROR",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(url + "/health", timeout=1)
                    break
                time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _manager(db: TSDB, root: Path, url: str, registry: CollectorRegistry) -> RemoteWriteManager:
    config = RemoteWriteConfig(url=url + "/api/v1/write", name="bench")
    return RemoteWriteManager(
        [config],
        db,
        state_dir=root / "remote_write",
        external_labels={},
        clock=SystemClock(),
        run_blocking=asyncio.to_thread,
        registry=registry,
    )


def _sent(registry: CollectorRegistry, name: str) -> float:
    labels = {"remote_name": "bench", "url": name}
    return registry.get_sample_value("prometheus_remote_storage_samples_total", labels) or 0.0


async def soulwatch_rate(vm: str, scrapes: int) -> tuple[float, float, int]:
    """(samples per CPU-second, wall seconds, samples) sending a WAL backlog."""
    labels = series_labels()
    with (
        tempfile.TemporaryDirectory(prefix="bench-rw-") as tmp,
        TSDB(StorageConfig(path=Path(tmp) / "tsdb")) as db,
    ):
        t0 = int(time.time() * 1000) - scrapes * 15_000
        for k in range(scrapes):
            app = db.appender()
            for i, lb in enumerate(labels):
                app.append(lb, t0 + k * 15_000, float(i + k))
            app.commit()
        state = Path(tmp) / "remote_write"
        state.mkdir()
        (state / "bench.json").write_text(
            json.dumps({"segment": 1, "offset": 0, "skip": 0, "since_ms": 0})
        )
        registry = CollectorRegistry()
        manager = _manager(db, Path(tmp), vm, registry)
        total = scrapes * SERIES
        url = vm + "/api/v1/write"
        c0, w0 = time.process_time(), time.perf_counter()
        task = asyncio.create_task(manager.run())
        deadline = time.monotonic() + 600
        while _sent(registry, url) < total and time.monotonic() < deadline:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await manager.close(flush_deadline=1.0)
    return total / cpu, wall, total


async def soulwatch_lag(vm: str, interval: float, count: int) -> list[float]:
    """Seconds from each commit of 10,000 samples to their acknowledgement."""
    labels = series_labels()
    lags = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-lag-") as tmp,
        TSDB(StorageConfig(path=Path(tmp) / "tsdb")) as db,
    ):
        registry = CollectorRegistry()
        manager = _manager(db, Path(tmp), vm, registry)
        task = asyncio.create_task(manager.run())
        await asyncio.sleep(0.5)
        gauge = "prometheus_remote_storage_queue_highest_sent_timestamp_seconds"
        for k in range(count):
            t_ms = int(time.time() * 1000)
            app = db.appender()
            for i, lb in enumerate(labels):
                app.append(lb, t_ms, float(i + k))
            app.commit()
            committed = time.perf_counter()
            query = {"remote_name": "bench", "url": vm + "/api/v1/write"}
            deadline = time.monotonic() + 120
            while (registry.get_sample_value(gauge, query) or 0) < t_ms / 1000:
                if time.monotonic() > deadline:
                    raise SystemExit("the receiver did not acknowledge within 120 s")
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - committed)
            await asyncio.sleep(max(0.0, interval - (time.perf_counter() - committed)))
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await manager.close(flush_deadline=1.0)
    return lags


def prometheus_remote_write_cost(vm: str, seconds: float) -> tuple[float, float, float] | None:
    """(CPU s per million samples without remote write, with it, samples sent)."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-target-") as tmp:
        body = Path(tmp) / "body.txt"
        body.write_text(exposition(SERIES))
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(body)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            target = int(server.stdout.readline())
            without = _prometheus_run(binary, target, None, seconds)
            with_rw = _prometheus_run(binary, target, vm, seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return without[0] / without[1] * 1e6, with_rw[0] / with_rw[1] * 1e6, with_rw[2]


def _prometheus_run(
    binary: str, target: int, vm: str | None, seconds: float
) -> tuple[float, float, float]:
    # (CPU seconds, samples appended, samples sent) over ``seconds`` of steady state.
    with tempfile.TemporaryDirectory(prefix="bench-prom-") as tmp, socket_port() as web:
        cfg = Path(tmp) / "prometheus.yml"
        text = (
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: bench\n    static_configs: [{{targets: ['127.0.0.1:{target}']}}]\n"
        )
        if vm is not None:
            text += f"remote_write:\n  - url: {vm}/api/v1/write\n"
        cfg.write_text(text)
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={cfg}",
                f"--storage.tsdb.path={tmp}/data",
                f"--web.listen-address=127.0.0.1:{web}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{web}/metrics"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if own_metrics(url).get("prometheus_tsdb_head_samples_appended_total", 0):
                        break
                time.sleep(0.2)
            time.sleep(3)  # past start-up work
            m0, s0 = own_metrics(url), _prom_sent(url)
            time.sleep(seconds)
            m1, s1 = own_metrics(url), _prom_sent(url)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    appended = (
        m1["prometheus_tsdb_head_samples_appended_total"]
        - m0["prometheus_tsdb_head_samples_appended_total"]
    )
    cpu = m1["process_cpu_seconds_total"] - m0["process_cpu_seconds_total"]
    return cpu, appended, s1 - s0


def _prom_sent(url: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("prometheus_remote_storage_samples_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapes", type=int, default=30, help="backlog scrapes of 10k series")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--prometheus-seconds", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between commits")
    parser.add_argument("--lag-scrapes", type=int, default=4)
    args = parser.parse_args()
    with victoria_metrics() as vm:
        runs = [asyncio.run(soulwatch_rate(vm, args.scrapes)) for _ in range(args.repeats)]
        rates = [r[0] for r in runs]
        walls = [r[1] for r in runs]
        prom = prometheus_remote_write_cost(vm, args.prometheus_seconds)
        lags = asyncio.run(soulwatch_lag(vm, args.interval, args.lag_scrapes))
    print("| sender → VictoriaMetrics | samples per CPU-second | note |\n|---|---:|---|")
    print(
        f"| soulwatch (WAL backlog of {runs[0][2]:,} samples) | {statistics.median(rates):,.0f}"
        f" ({min(rates):,.0f}–{max(rates):,.0f}) | wall {statistics.median(walls):.1f} s"
        " per backlog |"
    )
    if prom is None:
        print("| Prometheus | - | not installed |")
    else:
        base, with_rw, sent = prom
        extra = with_rw - base
        per_core = 1e6 / extra if extra > 0 else float("inf")
        print(
            f"| Prometheus 2.42 (remote write share) | {per_core:,.0f} | CPU s per 1M samples:"
            f" {base:.2f} scraping, {with_rw:.2f} scraping + sending {sent:,.0f} |"
        )
        print(f"\nsoulwatch / Prometheus: {statistics.median(rates) / per_core:.2f}x")
    print(
        f"\nsoulwatch send lag, 10,000 series every {args.interval:g} s "
        f"({len(lags)} commits): median {statistics.median(lags) * 1000:.0f} ms, "
        f"max {max(lags) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
