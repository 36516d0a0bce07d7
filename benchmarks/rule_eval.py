"""One full rule-evaluation cycle: soulwatch beside a real Prometheus, same rule files.

The rules: the Soulcaster pack (presets/soulcaster/rules/) plus 200
synthetic rules (100 recording, 100 alerting, in 4 groups) written to a temp
file. The data: 10,000 synthetic ``bench_requests_total`` series plus the
Soulcaster metrics the pack reads.

soulwatch: the :class:`RuleManager` with the real PromQL engine over the
embedded TSDB (5 minutes of samples every 15 s, in its head, written in
scrape-sized batches) and the SQLite alert-state store in a temp dir; a
cycle is ``evaluate_all`` (every group once, in turn), timed in wall-clock
and in CPU seconds, twice: with Python's default garbage collector and with
the service's settings (``soulwatch.gc_tuning``: the start-up heap frozen, a
larger young generation), with the time spent collecting.
Prometheus: the same rule files, scraping the same series from a local
exposition server every 5 s and evaluating every 5 s; its own
``prometheus_rule_group_last_duration_seconds`` per group is read from its
``/metrics`` (Prometheus runs groups concurrently; the sum is the work of one
cycle). Each side reports the median of ``--reps`` cycles and the spread.

Usage: ``PYTHONPATH=src python benchmarks/rule_eval.py [--reps 5] [--series 10000]``
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from soulwatch import gc_tuning
from soulwatch.alerts import Alert
from soulwatch.clock import SimulatedClock
from soulwatch.gc_tuning import tune_gc
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels

PACK = Path(__file__).resolve().parent.parent / "src" / "soulwatch" / "presets" / "soulcaster"
PACK_RULES = sorted((PACK / "rules").glob("*.yml"))
STEP_S = 15
HISTORY_S = 300


_RECORD = """\
      - record: bench:route{i}:rate5m
        expr: sum by (job) (rate(bench_requests_total{{route="{route}"}}[5m]))
"""
_ERRORS = """\
      - alert: BenchErrors{i}
        expr: |
          sum by (job, instance) (rate(bench_requests_total{{route="{route}", status="500"}}[5m]))
          / sum by (job, instance) (rate(bench_requests_total{{route="{route}"}}[5m])) > 0.15
        for: 5m
        labels: {{severity: notify}}
        annotations: {{summary: "{{{{ $labels.job }}}} {{{{ $value | humanizePercentage }}}}"}}
"""
_BUSY = """\
      - alert: BenchBusy{i}
        expr: bench_requests_total{{job="svc{job}", status="200"}} > {threshold}
        labels: {{severity: ticket}}
        annotations: {{summary: "{{{{ $labels.instance }}}} at {{{{ $value }}}}"}}
"""


def synthetic_rules() -> str:
    """200 rules over ``bench_requests_total``: 100 recording, 100 alerting, 4 groups."""
    out = ["groups:\n"]
    for g in range(4):
        out.append(f"  - name: synthetic-{g}\n    interval: 15s\n    rules:\n")
        for i in range(g * 50, g * 50 + 50):
            template = _RECORD if i % 2 == 0 else _ERRORS if i % 4 == 1 else _BUSY
            out.append(template.format(i=i, route=f"/r{i % 20}", job=i % 10, threshold=i * 40))
    return "".join(out)


def synthetic_series(count: int) -> list[tuple[Labels, float]]:
    """``count`` counters (label set, per-second rate) plus the pack's metrics (gauges: rate 0)."""
    out: list[tuple[Labels, float]] = []
    statuses = ("200", "201", "404", "500", "503")
    i = 0
    while len(out) < count:
        job, inst, route, status = i % 10, (i // 10) % 10, (i // 100) % 20, statuses[i // 2000 % 5]
        labels = Labels.of(
            __name__="bench_requests_total",
            job=f"svc{job}",
            instance=f"i{inst}",
            route=f"/r{route}",
            status=status,
        )
        out.append((labels, 1.0 + (i % 7)))
        i += 1
    for job in ("backend", "dashboard"):
        for status, rate in (("200", 20.0), ("500", 0.5)):
            out.append(
                (
                    Labels.of(__name__="http_requests_total", job=job, route="/x", status=status),
                    rate,
                )
            )
        for le, rate in (("0.5", 15.0), ("1", 18.0), ("2", 19.0), ("5", 20.0), ("+Inf", 20.0)):
            name = "http_request_duration_seconds_bucket"
            out.append((Labels.of(__name__=name, job=job, route="/x", le=le), rate))
    gauges = [
        Labels.of(__name__="probe_success", job="backend-health", instance="backend"),
        Labels.of(__name__="redis_up", instance="upstash"),
        Labels.of(__name__="heartbeat_up", check="reddit-poller"),
        Labels.of(__name__="e2b_sandbox_hours_used"),
        Labels.of(__name__="e2b_sandbox_hours_quota"),
        Labels.of(__name__="soulcaster_agent_job_oldest_age_seconds", status="running"),
        Labels.of(__name__="soulcaster_agent_job_oldest_age_seconds", status="pending"),
        # Steady state: no job has its own age series (none is stuck).
        Labels.of(__name__="soulcaster_reddit_last_ingest_timestamp_seconds", project_id="p1"),
        Labels.of(__name__="soulcaster_reddit_subreddits_configured", project_id="p1"),
    ]
    out += [(g, 0.0) for g in gauges]
    for outcome in ("success", "failed"):
        name = "soulcaster_agent_jobs_finished_total"
        out.append((Labels.of(__name__=name, outcome=outcome, category="none"), 0.01))
    return out


def gauge_value(labels: Labels, now: float) -> float:
    """The value of a gauge of the data set (counters are computed from their rates)."""
    name = labels.name
    if name == "e2b_sandbox_hours_quota":
        return 100.0
    if name == "e2b_sandbox_hours_used":
        return 42.0
    if name == "soulcaster_reddit_last_ingest_timestamp_seconds":
        return now - 60
    if name == "soulcaster_agent_job_oldest_age_seconds":
        return 120.0
    return 1.0


def value_at(labels: Labels, rate: float, now: float, t0: float) -> float:
    """A counter's value at ``now`` (``rate`` per second since ``t0``), or a gauge's."""
    return 1000.0 + rate * (now - t0) if rate else gauge_value(labels, now)


# --- soulwatch ----------------------------------------------------------------


class _NullSink:
    async def send(self, alerts: Sequence[Alert]) -> None:
        pass


class _GcTimer:
    """Time spent in the cyclic garbage collector, from ``gc.callbacks``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = 0
        self._began = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began
            self.collections += 1


async def run_soulwatch(
    rule_files: list[Path],
    series: list[tuple[Labels, float]],
    reps: int,
    data_dir: Path,
    *,
    tuned_gc: bool = False,
) -> tuple[list[float], list[float], int, list[float]]:
    """Cycle times in seconds (wall clock, CPU), the number of rules, and GC seconds per cycle.

    ``tuned_gc`` applies the service's collector settings (:func:`tune_gc`)
    once the data and the rules are loaded, as the service does once started.
    """
    start = 1_700_000_000.0
    clock = SimulatedClock(start=start)
    storage = TSDB(StorageConfig(path=data_dir / "tsdb"), clock=clock)
    t = start - HISTORY_S
    while t <= start:
        _scrape(storage, series, t, start - HISTORY_S)
        t += STEP_S
    store = AlertStateStore.in_data_dir(data_dir)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=_NullSink(),
        clock=clock,
        store=store,
    )
    manager.load(rule_files)
    n_rules = sum(len(g.rules) for g in manager.groups())
    await manager.evaluate_all(start)  # warm-up
    if tuned_gc:
        tune_gc()
    cycles: list[float] = []
    cpu_cycles: list[float] = []
    gc_seconds: list[float] = []
    timer = _GcTimer()
    gc.callbacks.append(timer)
    try:
        for rep in range(reps):
            ts = start + STEP_S * (rep + 1)
            clock.set_time(ts)
            _scrape(storage, series, ts, start - HISTORY_S)
            in_gc = timer.seconds
            began, cpu = time.perf_counter(), time.process_time()
            await manager.evaluate_all(ts)
            cycles.append(time.perf_counter() - began)
            cpu_cycles.append(time.process_time() - cpu)
            gc_seconds.append(timer.seconds - in_gc)
    finally:
        gc.callbacks.remove(timer)
        gc_tuning.reset()
    failures = [r for g in manager.groups() for r in g.rules if r.last_error]
    if failures:
        raise SystemExit(f"soulwatch rule errors: {[(r.name, r.last_error) for r in failures]}")
    store.close()
    storage.close()
    return cycles, cpu_cycles, n_rules, gc_seconds


def _scrape(storage: TSDB, series: list[tuple[Labels, float]], t: float, t0: float) -> None:
    """Append every series' sample at ``t`` in one batch, as one scrape would."""
    app = storage.appender()
    for labels, rate in series:
        app.append(labels, round(t * 1000), value_at(labels, rate, t, t0))
    app.commit()


# --- Prometheus ----------------------------------------------------------------


class _Exposition:
    """A local /metrics endpoint serving the data set with counters growing in real time."""

    def __init__(self, series: list[tuple[Labels, float]]) -> None:
        self.series = series
        self.t0 = time.time()
        bench = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = bench.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def render(self) -> str:
        now = time.time()
        lines = []
        for labels, rate in self.series:
            inner = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
            lines.append(f"{labels.name}{{{inner}}} {value_at(labels, rate, now, self.t0)}")
        return "\n".join(lines) + "\n"

    def __enter__(self) -> _Exposition:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _group_durations(port: int) -> dict[str, tuple[float, float]]:
    """rule_group -> (last duration, iterations) from Prometheus's own metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    durations: dict[str, float] = {}
    iterations: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "prometheus_rule_group_last_duration_seconds":
                durations[sample.labels["rule_group"]] = sample.value
            if sample.name == "prometheus_rule_group_iterations_total":
                iterations[sample.labels["rule_group"]] = sample.value
    return {g: (d, iterations.get(g, 0)) for g, d in durations.items()}


def run_prometheus(
    rule_files: list[Path], series: list[tuple[Labels, float]], reps: int, work: Path
) -> tuple[list[float], int] | None:
    """Per-cycle sums of group durations, and the number of groups; None without prometheus."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    with _Exposition(series) as exposition:
        port = _free_port()
        config = work / "prometheus.yml"
        files = "\n".join(f"  - {f}" for f in rule_files)
        config.write_text(
            "global:\n  scrape_interval: 5s\n  evaluation_interval: 5s\n"
            f"rule_files:\n{files}\n"
            "scrape_configs:\n  - job_name: bench\n    honor_labels: true\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exposition.port}']\n"
        )
        log = (work / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={work / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            # Rates need two scrapes; then collect one figure per new iteration.
            deadline = time.monotonic() + 60 + 10 * reps
            cycles: list[float] = []
            seen = -1.0
            groups = 0
            warmup_done = time.monotonic() + 20
            while time.monotonic() < deadline and len(cycles) < reps:
                time.sleep(1)
                try:
                    state = _group_durations(port)
                except httpx.HTTPError:
                    continue
                if not state or time.monotonic() < warmup_done:
                    continue
                iterations = min(it for _, it in state.values())
                if iterations > seen:
                    seen = iterations
                    groups = len(state)
                    cycles.append(sum(d for d, _ in state.values()))
            return cycles, groups
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
            log.close()


def _summary(values: list[float]) -> str:
    if not values:
        return "n/a"
    med = statistics.median(values)
    return f"{med * 1000:9.1f} ms  ({min(values) * 1000:.1f}-{max(values) * 1000:.1f})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run both sides and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--no-prometheus", action="store_true", help="soulwatch only")
    args = parser.parse_args(argv)
    series = synthetic_series(args.series)
    with tempfile.TemporaryDirectory(prefix="soulwatch-rule-bench-") as tmp:
        work = Path(tmp)
        synthetic = work / "synthetic.yml"
        synthetic.write_text(synthetic_rules())
        rule_files = [*PACK_RULES, synthetic]
        runs = {}
        for tuned in (False, True):
            (work / f"gc-{tuned}").mkdir()
            runs[tuned] = asyncio.run(
                run_soulwatch(rule_files, series, args.reps, work / f"gc-{tuned}", tuned_gc=tuned)
            )
        prom = None if args.no_prometheus else run_prometheus(rule_files, series, args.reps, work)
    ours, _, n_rules, _ = runs[True]
    print(f"rule evaluation: {n_rules} rules in {len(rule_files)} files, {len(series)} series")
    print(f"{'engine':<34} {'full cycle, median (min-max)':>30}")
    for tuned, (wall, cpu, _, in_gc) in runs.items():
        how = "tuned GC (the service's)" if tuned else "default GC"
        print(f"{'soulwatch, ' + how:<34} {_summary(wall):>30}")
        print(f"{'  CPU time':<34} {_summary(cpu):>30}")
        print(f"{'  in the garbage collector':<34} {_summary(in_gc):>30}")
    if prom is None:
        print("prometheus: not run (not installed, or --no-prometheus)")
        return 0
    cycles, groups = prom
    print(f"{'prometheus 2.42 (sum of groups)':<34} {_summary(cycles):>30}")
    if cycles:
        ratio = statistics.median(ours) / statistics.median(cycles)
        print(f"soulwatch / prometheus: {ratio:.1f}x ({groups} groups)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
