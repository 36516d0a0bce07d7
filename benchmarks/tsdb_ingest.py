"""TSDB ingest: soulwatch's embedded store beside a real Prometheus, in one run.

Measures, on the same synthetic data (N series scraped every 15 s for an hour,
a realistic mix of counters, float counters, gauges and constants, scrape
timestamps with a few ms of jitter):

* samples/s appended by soulwatch, in batches the size of one scrape, one thread;
* soulwatch compaction speed (head -> Gorilla chunks in SQLite);
* bytes per sample on disk after compaction, for soulwatch (the SQLite file) and
  for Prometheus (the block ``promtool tsdb create-blocks-from openmetrics``
  writes from the same samples);
* head memory per active series: soulwatch by tracemalloc while ingesting with
  maintenance every minute (as the service runs it), highest and mean value of
  the second half hour, measured just before each maintenance;
  Prometheus by its Go heap growth per head series while it scrapes a local
  target serving the same N series every second (an upper bound: the whole
  process), with its CPU seconds per million samples scraped.

Usage: ``python benchmarks/tsdb_ingest.py [--series 10000] [--scrapes 240] [--reps 3]``.
Prints one table (Markdown) with the goals from issue #3.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from array import array
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels

T0 = 1_700_000_000_000
INTERVAL_MS = 15_000
GOAL_BYTES_PER_SAMPLE = 4.0
GOAL_HEAD_BYTES = 2048


# ------------------------------------------------------------------ the data


class Workload:
    """N series with a realistic mix of value kinds; each ``step`` is one scrape."""

    def __init__(self, n: int, seed: int = 42) -> None:
        rng = random.Random(seed)
        self.labels: list[Labels] = []
        self.kinds: list[str] = []
        handlers = [f"/api/v1/{w}" for w in ("jobs", "feedback", "clusters", "health", "ingest")]
        i = 0
        while len(self.labels) < n:
            instance = f"10.0.{i // 250}.{i % 250}:8000"
            for family, kind, extra in self._families(handlers):
                if len(self.labels) >= n:
                    break
                lbls = Labels.of(extra, __name__=family, job="api", instance=instance)
                self.labels.append(lbls)
                self.kinds.append(kind)
            i += 1
        self.values = [
            0.0 if k != "gauge" else float(rng.randint(10**4, 10**5) * 4096) for k in self.kinds
        ]
        # How often each counter moves: never (40%), now and then (30%), every scrape (30%).
        choices = [0.0, 0.0, 0.0, 0.0, 0.05, 0.2, 0.3, 1.0, 1.0, 1.0]
        self.rates = [rng.choice(choices) for _ in self.kinds]
        self.rng = rng

    @staticmethod
    def _families(handlers: list[str]) -> Iterator[tuple[str, str, dict[str, str]]]:
        for handler in handlers:
            for code in ("200", "404", "500"):
                yield "http_requests_total", "counter", {"handler": handler, "code": code}
            for le in ("0.05", "0.1", "0.25", "0.5", "1", "2", "5", "+Inf"):
                yield (
                    "http_request_duration_seconds_bucket",
                    "counter",
                    {"handler": handler, "le": le},
                )
            yield "http_request_duration_seconds_sum", "float_counter", {"handler": handler}
        yield "process_cpu_seconds_total", "float_counter", {}
        yield "process_resident_memory_bytes", "gauge", {}
        yield "process_open_fds", "small_gauge", {}
        yield "up", "constant", {}
        yield "app_build_info", "constant", {"version": "1.4.2"}

    def step(self) -> list[float]:
        """Advance every series by one scrape and return the values.

        Like a real service: many counters rarely move (404s, 500s, slow
        buckets), busy ones move every scrape, CPU time moves in 10 ms ticks,
        memory in pages, and some series never change.
        """
        rng = self.rng
        vals = self.values
        for i, kind in enumerate(self.kinds):
            rate = self.rates[i]
            if kind == "counter":
                if rng.random() < rate:
                    vals[i] += rng.randint(1, 40)
            elif kind == "float_counter":
                vals[i] = round(vals[i] + rng.randint(0, 150) / 100, 2)
            elif kind == "gauge":
                if rng.random() < 0.5:
                    vals[i] += rng.randint(-64, 64) * 4096.0
            elif kind == "small_gauge":
                if rng.random() < 0.2:
                    vals[i] = float(rng.randint(40, 60))
            else:
                vals[i] = 1.0
        return list(vals)


def scrape_times(scrapes: int, seed: int = 7) -> list[int]:
    """Scrape timestamps every 15 s with 0-3 ms of jitter, like a real scrape loop."""
    rng = random.Random(seed)
    return [T0 + k * INTERVAL_MS + rng.randint(0, 3) for k in range(scrapes)]


# --------------------------------------------------------------- soulwatch


def ingest(
    db: TSDB, clock: SimulatedClock, work: Workload, times: list[int], batches: list[list[float]]
) -> tuple[float, float, dict[int, tuple[int, int]]]:
    """Append every scrape as one batch, maintenance every minute as the service
    runs it; returns CPU seconds spent appending and maintaining, and the sizes
    of the chunk database and of the WAL after each maintenance, by scrape index."""
    labels = work.labels
    append_s = maintain_s = 0.0
    sizes: dict[int, tuple[int, int]] = {}
    for k, (t, vals) in enumerate(zip(times, batches, strict=True)):
        clock.set_time(t / 1000)
        start = time.process_time()
        app = db.appender(source="api/bench")
        for lbls, v in zip(labels, vals, strict=True):
            app.append(lbls, t, v)
        app.commit()
        append_s += time.process_time() - start
        if k % 4 == 3:
            start = time.process_time()
            db.maintain()
            maintain_s += time.process_time() - start
            sizes[k] = (db._store.size(), db._wal.size())
    return append_s, maintain_s, sizes


def soulwatch_run(
    root: Path, work: Workload, times: list[int], batches: list[list[float]]
) -> dict[str, float]:
    """One ingest + compaction + size measurement in a fresh directory."""
    clock = SimulatedClock(start=times[0] / 1000)
    path = root / "soulwatch"
    shutil.rmtree(path, ignore_errors=True)
    config = StorageConfig(path=path, wal_fsync_interval=1.0)
    db = TSDB(config, clock=clock)
    try:
        append_s, compact_s, sizes = ingest(db, clock, work, times, batches)
        # Steady state: what the second half hour added, head about as full at both ends.
        mid = max(k for k in sizes if k < len(times) // 2)
        end = max(sizes)
        marginal = (sizes[end][0] - sizes[mid][0]) / ((end - mid) * len(work.labels))
        wal_steady = statistics.mean(wal for k, (_, wal) in sizes.items() if k >= mid)
        start = time.process_time()
        report = db.maintain(force=True)  # the rest of the head, for the size measurement
        compact_s += time.process_time() - start
        db.checkpoint()
        samples = len(times) * len(work.labels)
        stats = db.stats()
        assert stats.samples_persisted == samples, stats
        assert report.chunks_written > 0
    finally:
        db.close()
    files = [p for p in path.rglob("*") if p.is_file() and p.name != "lock"]
    disk = sum(p.stat().st_size for p in files)
    import sqlite3

    conn = sqlite3.connect(path / "chunks.sqlite")
    (payload,) = conn.execute("SELECT sum(length(data)) FROM chunks").fetchone()
    conn.close()
    return {
        "append_sps": samples / append_s,
        "compact_sps": samples / compact_s,
        "disk_bps": disk / samples,
        "marginal_bps": marginal,
        "wal_mib": wal_steady / 2**20,
        "wal_bps": wal_steady / (len(work.labels) * 120),  # ~30 min of samples in the WAL
        "chunk_bps": payload / samples,
    }


def head_memory(
    root: Path,
    work: Workload,
    times: list[int],
    batches: list[list[float]],
    *,
    batched: bool = False,
) -> dict[str, float]:
    """Python heap per series (tracemalloc) while ingesting with maintenance every
    minute, as the service runs it; measured just before each maintenance (the
    high point of each cycle) once the first chunks were cut (second half).

    ``batched``: each scrape goes in through ``append_batch`` with the series
    refs kept, as a scrape target in steady state appends; otherwise through
    ``append`` per sample."""
    clock = SimulatedClock(start=times[0] / 1000)
    path = root / "soulwatch-mem"
    shutil.rmtree(path, ignore_errors=True)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    db = TSDB(StorageConfig(path=path), clock=clock)
    points = []
    try:
        labels = work.labels
        refs = [0] * len(labels)
        for k, (t, vals) in enumerate(zip(times, batches, strict=True)):
            clock.set_time(t / 1000)
            app = db.appender(source="api/bench")
            if batched:
                refs = app.append_batch(refs, labels, t, array("d", vals))
            else:
                for lbls, v in zip(labels, vals, strict=True):
                    app.append(lbls, t, v)
            app.commit()
            if k % 4 == 3:  # every 60 s of scrapes
                if k >= len(times) // 2:
                    points.append((tracemalloc.get_traced_memory()[0] - base) / len(labels))
                db.maintain()
        in_head = db.stats().head_samples / len(labels)
    finally:
        tracemalloc.stop()
        db.close()
    return {"mean": statistics.mean(points), "max": max(points), "head_samples": in_head}


# -------------------------------------------------------------- prometheus


def promtool_block(
    root: Path, work: Workload, times: list[int], batches: list[list[float]]
) -> dict[str, float]:
    """Backfill the same samples with promtool; bytes per sample of the block."""
    promtool = shutil.which("promtool")
    if promtool is None:
        return {}
    src = root / "samples.om"
    with src.open("w") as fh:
        by_family: dict[str, list[int]] = {}
        for i, lbls in enumerate(work.labels):
            by_family.setdefault(lbls.name, []).append(i)
        for family, idxs in by_family.items():
            kind = "counter" if family.endswith("_total") else "unknown"
            fh.write(
                f"# TYPE {family.removesuffix('_total') if kind == 'counter' else family} {kind}\n"
            )
            for i in idxs:
                text = _exposition(work.labels[i])
                for t, vals in zip(times, batches, strict=True):
                    fh.write(f"{text} {vals[i]!r} {t / 1000:.3f}\n")
        fh.write("# EOF\n")
    out = root / "blocks"
    start = _children_cpu()
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(src), str(out)],
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    cpu = _children_cpu() - start
    src.unlink()
    blocks = [d for d in out.iterdir() if (d / "meta.json").exists()]
    samples = sum(json.loads((d / "meta.json").read_text())["stats"]["numSamples"] for d in blocks)
    total = sum(p.stat().st_size for d in blocks for p in d.rglob("*") if p.is_file())
    chunks = sum(p.stat().st_size for d in blocks for p in (d / "chunks").iterdir())
    return {
        "samples": samples,
        "disk_bps": total / samples,
        "chunk_bps": chunks / samples,
        "backfill_cpu_per_m": cpu / samples * 1e6,
    }


def _exposition(labels: Labels) -> str:
    """``name{a="b",c="d"}`` as both the text format and OpenMetrics accept it."""
    pairs = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
    return f"{labels.name}{{{pairs}}}"


def _children_cpu() -> float:
    usage = os.times()
    return usage.children_user + usage.children_system


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Target:
    """A local /metrics endpoint serving the workload's series (or nothing, at first)."""

    def __init__(self, work: Workload) -> None:
        self.work = work
        self.serving = False
        self.scrapes = 0
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = target.body().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def body(self) -> str:
        if not self.serving:
            return ""
        self.scrapes += 1
        vals = self.work.step()
        lines = []
        for lbls, v in zip(self.work.labels, vals, strict=True):
            lines.append(f"{_exposition(lbls)} {v!r}")
        return "\n".join(lines) + "\n"


def _prom_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.partition("{")[0]
            out[name] = out.get(name, 0.0) + float(value)  # summed over label sets
    return out


def prometheus_head(root: Path, work: Workload, seconds: float) -> dict[str, float]:
    """Run Prometheus scraping the target every second; heap and CPU per series/sample."""
    binary = shutil.which("prometheus")
    if binary is None:
        return {}
    target = _Target(work)
    target.thread.start()
    port = _free_port()
    config = root / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: bench\n    static_configs: [{{targets: ['127.0.0.1:{target.port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={root / 'prom-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:  # bounded by the deadline
            try:
                before = _prom_metrics(port)
                if before.get("prometheus_target_scrape_pools_total", 0) >= 1:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("prometheus did not start")
            time.sleep(0.2)
        time.sleep(3)  # a few empty scrapes: the baseline heap
        before = _prom_metrics(port)
        target.serving = True
        time.sleep(seconds)
        after = _prom_metrics(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        target.server.shutdown()
        target.server.server_close()
    series = after["prometheus_tsdb_head_series"] - before["prometheus_tsdb_head_series"]
    samples = (
        after["prometheus_tsdb_head_samples_appended_total"]
        - before["prometheus_tsdb_head_samples_appended_total"]
    )
    heap = after["go_memstats_heap_inuse_bytes"] - before["go_memstats_heap_inuse_bytes"]
    cpu = after["process_cpu_seconds_total"] - before["process_cpu_seconds_total"]
    return {
        "series": series,
        "samples": samples,
        "heap_per_series": heap / series,
        "cpu_per_m": cpu / samples * 1e6,
        "scrapes": target.scrapes,
    }


# ------------------------------------------------------------------- report


def _spread(values: list[float]) -> str:
    med = statistics.median(values)
    return f"{med:,.0f} ({min(values):,.0f}–{max(values):,.0f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--scrapes", type=int, default=240, help="15 s apart (240 = 1 h)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--prometheus-seconds", type=float, default=20.0)
    parser.add_argument(
        "--memory-series",
        type=int,
        default=2000,
        help="series for the tracemalloc run (tracing every allocation is slow)",
    )
    args = parser.parse_args()

    work = Workload(args.series)
    times = scrape_times(args.scrapes)
    batches = [work.step() for _ in times]
    samples = args.series * args.scrapes
    print(
        f"{args.series} series x {args.scrapes} scrapes = {samples:,} samples; "
        f"{os.cpu_count()} cores; python {sys.version.split()[0]}",
        file=sys.stderr,
    )
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-") as tmp:
        root = Path(tmp)
        runs = []
        for rep in range(args.reps):
            runs.append(soulwatch_run(root, work, times, batches))
            print(f"rep {rep + 1}: {runs[-1]}", file=sys.stderr)
        mem_work = Workload(args.memory_series, seed=44)
        mem_batches = [mem_work.step() for _ in times]
        memory = head_memory(root, mem_work, times, mem_batches)
        print(f"head memory: {memory}", file=sys.stderr)
        memory_batched = head_memory(root, mem_work, times, mem_batches, batched=True)
        print(f"head memory, batch appends: {memory_batched}", file=sys.stderr)
        block = promtool_block(root, work, times, batches)
        print(f"promtool: {block}", file=sys.stderr)
        prom = prometheus_head(root, Workload(args.series, seed=43), args.prometheus_seconds)
        print(f"prometheus: {prom}", file=sys.stderr)

    disk = runs[0]["disk_bps"]
    rows = [
        (
            "samples/s appended (scrape-sized batches, 1 thread)",
            _spread([r["append_sps"] for r in runs]),
            "—",
            "—",
        ),
        (
            "samples/s through maintenance (cut into chunks, WAL, retention)",
            _spread([r["compact_sps"] for r in runs]),
            "—",
            "—",
        ),
        (
            "bytes/sample on disk, whole store after the run",
            f"{disk:.2f}",
            f"{block['disk_bps']:.2f}" if block else "n/a",
            f"≤ {GOAL_BYTES_PER_SAMPLE} {'met' if disk <= GOAL_BYTES_PER_SAMPLE else 'NOT met'}",
        ),
        (
            "WAL on disk at steady state (mean MiB; until chunked, ≤ 30 min of samples)",
            f"{runs[0]['wal_mib']:.1f}",
            "—",
            "—",
        ),
        (
            "bytes/sample on disk, chunk database growth over the second half hour",
            f"{runs[0]['marginal_bps']:.2f}",
            "—",
            f"≤ {GOAL_BYTES_PER_SAMPLE} "
            + ("met" if runs[0]["marginal_bps"] <= GOAL_BYTES_PER_SAMPLE else "NOT met"),
        ),
        (
            "bytes/sample, chunk payload only",
            f"{runs[0]['chunk_bps']:.2f}",
            f"{block['chunk_bps']:.2f}" if block else "n/a",
            "—",
        ),
        (
            f"head bytes per active series, steady state: max (mean), {args.memory_series} series",
            f"{memory['max']:,.0f} ({memory['mean']:,.0f})",
            f"{prom['heap_per_series']:,.0f} (Go heap growth / head series)" if prom else "n/a",
            f"≤ {GOAL_HEAD_BYTES} {'met' if memory['max'] <= GOAL_HEAD_BYTES else 'NOT met'}",
        ),
        (
            "head bytes per active series, as above, appended in batches (scrape steady state)",
            f"{memory_batched['max']:,.0f} ({memory_batched['mean']:,.0f})",
            "—",
            f"≤ {GOAL_HEAD_BYTES} "
            + ("met" if memory_batched["max"] <= GOAL_HEAD_BYTES else "NOT met"),
        ),
        (
            "CPU s per million samples",
            f"{1e6 / statistics.median([r['append_sps'] for r in runs]):.2f} (append only)",
            (
                f"{prom['cpu_per_m']:.2f} (scrape+parse+append); "
                f"{block['backfill_cpu_per_m']:.2f} (promtool backfill)"
            )
            if prom and block
            else "n/a",
            "—",
        ),
    ]
    print("| measure | soulwatch | Prometheus 2.42 | goal |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if disk > 0 and block:
        print(f"\nratio soulwatch/Prometheus bytes per sample: {disk / block['disk_bps']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
