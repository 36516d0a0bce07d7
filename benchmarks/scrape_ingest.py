"""Scrape ingest: a 10k-series target scraped by soulwatch and by Prometheus in the same run.

Measures, on one core:

* the exposition parser alone: ``prometheus_client.parser`` versus soulwatch's
  parser, cold (every series text new) and warm (series texts known from the
  previous scrape, the steady state);
* scrape + parse + append samples/s into MemoryStorage and the embedded TSDB
  (HTTP over 127.0.0.1, one target, scrapes back to back, no thread offload);
* CPU seconds per million samples for soulwatch and for a real Prometheus
  scraping the same target every second (from its ``process_cpu_seconds_total``
  and ``prometheus_tsdb_head_samples_appended_total``).

Run: ``.venv/bin/python benchmarks/scrape_ingest.py [--repeats 5] [--prometheus-seconds 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from soulwatch.clock import SystemClock  # noqa: E402
from soulwatch.runner import run_inline  # noqa: E402
from soulwatch.sources.scrape import ScrapeConfig, ScrapeManager  # noqa: E402
from soulwatch.sources.scrape.parse import Format, samples  # noqa: E402
from soulwatch.tsdb.memory import MemoryStorage  # noqa: E402

SERIES = 10_000


class _NullAppender:
    def append(self, labels: object, t_ms: int, value: float) -> None:
        pass

    def commit(self) -> None:
        pass

    def rollback(self) -> None:
        pass


class NullStorage:
    """Takes every sample and keeps nothing: isolates scrape + parse from storage cost."""

    def appender(self, source: str = "") -> _NullAppender:
        return _NullAppender()


def exposition(n: int = SERIES) -> str:
    """A realistic body: counters, gauges and histograms with 3-4 labels each."""
    lines: list[str] = []
    routes = [f"/api/v1/resource{i}/{{id}}" for i in range(50)]
    methods = ["GET", "POST", "PUT", "DELETE"]
    count = 0
    lines.append("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter")
    for route in routes:
        for method in methods:
            for code in ("200", "404", "500"):
                lines.append(
                    f'http_requests_total{{method="{method}",route="{route}",code="{code}",'
                    f'service="backend"}} {count * 7 + 1}'
                )
                count += 1
    lines.append("# TYPE http_request_duration_seconds histogram")
    buckets = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "5", "+Inf"]
    i = 0
    while count < n - 200:
        route, method = routes[i % 50], methods[(i // 50) % 4]
        pod = f"backend-{i // 200}"
        for j, le in enumerate(buckets):
            lines.append(
                f'http_request_duration_seconds_bucket{{method="{method}",route="{route}",'
                f'pod="{pod}",le="{le}"}} {j * 3 + i}'
            )
        lines.append(
            f'http_request_duration_seconds_sum{{method="{method}",route="{route}",pod="{pod}"}} '
            f"{i * 0.37:.3f}"
        )
        lines.append(
            f'http_request_duration_seconds_count{{method="{method}",route="{route}",pod="{pod}"}} '
            f"{30 + i}"
        )
        count += len(buckets) + 2
        i += 1
    lines.append("# TYPE queue_depth gauge")
    while count < n:
        lines.append(f'queue_depth{{queue="q{count}",cluster="c1"}} {count % 13}')
        count += 1
    return "\n".join(lines) + "\n"


SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    body = open(sys.argv[1], "rb").read()
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        def log_message(self, *a):
            pass
    srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()
    """
)


def timed(fn: Callable[[], int], repeats: int) -> list[float]:
    """Samples per CPU-second of ``fn`` (which returns its sample count), ``repeats`` runs.

    CPU time, not wall time: on a machine shared with other work the wall
    clock measures the neighbours as much as the code.
    """
    rates = []
    for _ in range(repeats):
        t0 = time.process_time()
        n = fn()
        rates.append(n / (time.process_time() - t0))
    return rates


def parser_rates(body: str, repeats: int) -> dict[str, list[float]]:
    from prometheus_client.parser import text_string_to_metric_families

    def client() -> int:
        return sum(len(f.samples) for f in text_string_to_metric_families(body))

    def cold() -> int:
        return sum(1 for _ in samples(body, Format.TEXT))

    known = {key for key, *_ in samples(body, Format.TEXT)}

    def warm() -> int:
        return sum(1 for _ in samples(body, Format.TEXT, known))

    return {
        "prometheus_client.parser": timed(client, repeats),
        "soulwatch parser, cold": timed(cold, repeats),
        "soulwatch parser, warm": timed(warm, repeats),
    }


async def scrape_rate(port: int, storage: object, scrapes: int) -> tuple[float, float]:
    """(samples/s wall, CPU s per million samples) of back-to-back scrapes into ``storage``."""
    cfg = ScrapeConfig.model_validate(
        {
            "job_name": "bench",
            "scrape_interval": "15s",
            "scrape_timeout": "10s",
            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
        }
    ).resolved()
    clock = SystemClock()
    manager = ScrapeManager([cfg], storage, clock=clock, runner=run_inline)  # type: ignore[arg-type]
    target = manager.targets[0]
    await target.run_once(clock.time())  # warm: connection, caches, series created
    assert target.status.last_error == "", target.status.last_error
    total = 0
    c0, t0 = time.process_time(), time.perf_counter()
    for _ in range(scrapes):
        await asyncio.sleep(0.002)  # distinct millisecond timestamps
        await target.run_once(clock.time())
        total += target.status.samples_scraped
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    await manager.stop()
    return total / wall, cpu / total * 1e6


def prometheus_cpu(port: int, seconds: float) -> tuple[float, float] | None:
    """(CPU s per million samples, samples appended) of Prometheus scraping the target."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    with tempfile.TemporaryDirectory(prefix="bench-prom-") as tmp:
        cfg = Path(tmp) / "prometheus.yml"
        cfg.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
            "scrape_configs:\n"
            f"  - job_name: bench\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
        with socket_port() as web:
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
                    try:
                        if own_metrics(url).get("prometheus_tsdb_head_samples_appended_total", 0):
                            break
                    except OSError:
                        pass
                    time.sleep(0.2)
                time.sleep(3)  # past start-up work
                m0 = own_metrics(url)
                time.sleep(seconds)
                m1 = own_metrics(url)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
    appended = (
        m1["prometheus_tsdb_head_samples_appended_total"]
        - m0["prometheus_tsdb_head_samples_appended_total"]
    )
    cpu = m1["process_cpu_seconds_total"] - m0["process_cpu_seconds_total"]
    return cpu / appended * 1e6, appended


class socket_port:
    """A free port on 127.0.0.1."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


def own_metrics(url: str) -> dict[str, float]:
    """Prometheus's own un-labelled counters, summed per name."""
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in ("process_cpu_seconds_total", "prometheus_tsdb_head_samples_appended_total"):
            out[name] = out.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def fmt(rates: list[float]) -> str:
    med = statistics.median(rates)
    return f"{med:>11,.0f} ({min(rates):,.0f}–{max(rates):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scrapes", type=int, default=10)
    parser.add_argument("--prometheus-seconds", type=float, default=20.0)
    args = parser.parse_args()

    body = exposition()
    print(f"target: {SERIES} series, {len(body) / 1024:.0f} KiB of text format")
    print(f"\n## Parser alone (samples per CPU-second, median (min–max) of {args.repeats} runs)")
    rates = parser_rates(body, args.repeats)
    base = statistics.median(rates["prometheus_client.parser"])
    print("| parser | samples per CPU-second | × prometheus_client |\n|---|---:|---:|")
    for name, r in rates.items():
        print(f"| {name} | {fmt(r)} | {statistics.median(r) / base:.1f}× |")

    with tempfile.TemporaryDirectory(prefix="bench-scrape-") as tmp:
        body_file = Path(tmp) / "body.txt"
        body_file.write_text(body)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(body_file)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            results: dict[str, list[tuple[float, float]]] = {
                "no-op storage": [],
                "MemoryStorage": [],
            }
            try:
                from soulwatch.tsdb.config import StorageConfig
                from soulwatch.tsdb.db import TSDB
            except ImportError:
                TSDB = None  # type: ignore[assignment,misc]
            if TSDB is not None:
                results["embedded TSDB"] = []
            for rep in range(args.repeats):
                results["no-op storage"].append(
                    asyncio.run(scrape_rate(port, NullStorage(), args.scrapes))
                )
                results["MemoryStorage"].append(
                    asyncio.run(scrape_rate(port, MemoryStorage(), args.scrapes))
                )
                if TSDB is not None:
                    db = TSDB(StorageConfig(path=Path(tmp) / f"tsdb{rep}"))
                    try:
                        results["embedded TSDB"].append(
                            asyncio.run(scrape_rate(port, db, args.scrapes))
                        )
                    finally:
                        db.close()
            prom = prometheus_cpu(port, args.prometheus_seconds)
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(f"\n## Scrape + parse + append ({args.scrapes} scrapes × {SERIES} series, one core)")
    print(
        "| ingest into | samples/s (wall) | samples per CPU-second | CPU s per million samples |"
        "\n|---|---:|---:|---:|"
    )
    for name, runs in results.items():
        cpu = [c for _, c in runs]
        per_cpu = [1e6 / c for c in cpu]
        print(
            f"| soulwatch → {name} | {fmt([r for r, _ in runs])} | {fmt(per_cpu)} | "
            f"{statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) |"
        )
    if prom is None:
        print("| Prometheus | not installed | | |")
    else:
        per_million, appended = prom
        print(
            f"| Prometheus (its own TSDB, {appended:,.0f} samples at 1 s interval) | — | "
            f"{1e6 / per_million:,.0f} | {per_million:.2f} |"
        )
        print()
        for name, runs in results.items():
            ours = statistics.median([c for _, c in runs])
            print(f"soulwatch → {name}: {ours / per_million:.2f}× Prometheus's CPU per sample")


if __name__ == "__main__":
    main()
