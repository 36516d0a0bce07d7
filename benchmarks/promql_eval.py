"""Time soulwatch's PromQL engine beside a real Prometheus on the same data.

The data: the Soulcaster metrics the rule pack reads (HTTP request counters
and latency histograms, probe and Redis gauges, agent-job counters, E2B
quota, Reddit poller freshness, oldest running job), ``--series`` series in
total, ``--hours`` of samples every 15 s, generated from a fixed seed.

soulwatch evaluates in-process over a columnar in-memory storage that hands
the engine each series' samples as arrays (the engine is what is measured,
not a storage); Prometheus gets the same samples
backfilled with ``promtool tsdb create-blocks-from openmetrics`` and is
queried over its HTTP API on 127.0.0.1 (so its figures include HTTP and JSON,
which is a few hundred microseconds per query). Each figure is the median of
``--reps`` runs after one warm-up; the spread (min-max) is printed too.

Each soulwatch figure is taken twice: with the step-by-step evaluation of
range functions and aggregations (``Engine(columnar=False)``, the code before
the array path) and with the array path (the default). With ``--hours 24``
or more, a console-sized case runs too: ten board panels over 24 h at a 60 s
step, summed.

Usage: ``python benchmarks/promql_eval.py [--series 1000 10000] [--hours 24] [--reps 5]``
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from soulwatch.promql.engine import Engine
from soulwatch.promql.values import Sample
from soulwatch.tsdb.model import Labels, Matcher, Series, matches_all

STEP_S = 15

RULES: dict[str, str] = {
    "backend down": 'probe_success{job="backend-health"} == 0',
    "5xx ratio": (
        'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
        " / sum by (job) (rate(http_requests_total[5m])) > 0.05"
        " and sum by (job) (rate(http_requests_total[5m])) > 0.5"
    ),
    "agent failures": (
        'sum(increase(soulcaster_agent_jobs_finished_total{outcome="failed"}[15m]))'
        " / sum(increase(soulcaster_agent_jobs_finished_total[15m])) > 0.5"
        " and sum(increase(soulcaster_agent_jobs_finished_total[15m])) >= 5"
    ),
    "redis down": "redis_up == 0",
    "p95 latency": (
        "histogram_quantile(0.95, sum by (le, job) "
        "(rate(http_request_duration_seconds_bucket[5m]))) > 2"
    ),
    "reddit lag": "time() - soulcaster_reddit_newest_item_timestamp_seconds > 7200",
    "e2b quota": "e2b_sandbox_hours_used / e2b_sandbox_hours_quota > 0.8",
    "job stuck": 'soulcaster_agent_job_oldest_age_seconds{status="running"} > 900',
}

RANGE_QUERIES: dict[str, str] = {
    "rate, 1h @15s": "rate(http_requests_total[5m])",
    "sum rate, 1h @15s": "sum by (job, status) (rate(http_requests_total[5m]))",
    "p95, 1h @15s": (
        "histogram_quantile(0.95, sum by (le, job) "
        "(rate(http_request_duration_seconds_bucket[5m])))"
    ),
    # A dashboard's error ratio: two aggregations and a binary operator over them.
    "5xx ratio, 1h @15s": (
        'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
        " / sum by (job) (rate(http_requests_total[5m]))"
    ),
    "avg_over_time, 1h @15s": "avg_over_time(http_requests_total[5m])",
    "deriv, 1h @15s": "deriv(http_requests_total[5m])",
    # A latency board's percentile over raw samples: one sort per window.
    "quantile_over_time, 1h @15s": "quantile_over_time(0.95, http_requests_total[5m])",
    # Aggregations other than sum, a math function and smoothing over range functions.
    "avg by rate, 1h @15s": "avg by (job) (rate(http_requests_total[5m]))",
    "topk rate, 1h @15s": "topk(5, rate(http_requests_total[5m]))",
    "quantile rate, 1h @15s": "quantile(0.9, rate(http_requests_total[5m]))",
    "abs deriv, 1h @15s": "abs(deriv(http_requests_total[5m]))",
    # Prometheus 2.42 knows the function by its old name, holt_winters (see _v2).
    "double_exponential_smoothing, 1h @15s": (
        "double_exponential_smoothing(http_requests_total[5m], 0.5, 0.5)"
    ),
}

#: A console board: ten panels, each a range query over 24 h at a 60 s step.
CONSOLE_PANELS = (
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum by (job, status) (rate(http_requests_total[5m]))",
    'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
    " / sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.5, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    "sum by (outcome) (increase(soulcaster_agent_jobs_finished_total[15m]))",
    'min(probe_success{job="backend-health"})',
    "e2b_sandbox_hours_used / e2b_sandbox_hours_quota",
    "max by (status) (soulcaster_agent_job_oldest_age_seconds)",
    "time() - max(soulcaster_reddit_newest_item_timestamp_seconds)",
)
CONSOLE = "console: ten panels, 24 h @ 60 s"
CONSOLE_STEP_S = 60

BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2", "2.5", "5", "10", "+Inf")


class ColumnStorage:
    """Series sharing one timestamp column; values in compact float arrays.

    Series are found through an inverted index (label name -> value -> series)
    as any TSDB's postings would: a regex is matched once per distinct label
    value, not once per series, so the benchmark measures the engine rather
    than a linear series scan.
    """

    def __init__(self, timestamps: list[int]) -> None:
        self.timestamps: array[int] = array("q", timestamps)
        self.series: dict[Labels, array[float]] = {}
        self._postings: dict[str, dict[str, set[Labels]]] = {}

    def index(self) -> None:
        """Build the postings once all series are in."""
        self._postings = {}
        for labels in self.series:
            for name, value in labels:
                self._postings.setdefault(name, {}).setdefault(value, set()).add(labels)

    def _matching(self, matcher: Matcher) -> set[Labels] | None:
        """Series a matcher selects, or None if it also matches an absent label."""
        if matcher.matches(""):
            return None
        values = self._postings.get(matcher.name, {})
        out: set[Labels] = set()
        for value, members in values.items():
            if matcher.matches(value):
                out |= members
        return out

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """Matching series with their samples in ``[mint_ms, maxt_ms]``, sorted by labels."""
        lo = bisect_left(self.timestamps, mint_ms)
        hi = bisect_right(self.timestamps, maxt_ms)
        if lo >= hi:
            return
        ts = self.timestamps[lo:hi]
        found: set[Labels] | None = None
        rest = []
        for m in matchers:
            hits = self._matching(m)
            if hits is None:
                rest.append(m)
            else:
                found = hits if found is None else found & hits
        candidates = sorted(found if found is not None else self.series)
        for labels in candidates:
            if not rest or matches_all(rest, labels):
                # Samples as arrays, as a columnar store holds them; the engine
                # reads them without converting each sample to a Python object.
                yield Series(labels, ts, self.series[labels][lo:hi])  # type: ignore[arg-type]


def _counter(rng: random.Random, n: int, rate: float) -> array[float]:
    increments = [float(rng.randint(0, max(1, int(rate * 2 * STEP_S)))) for _ in range(64)]
    steps = (increments[(i * 7 + rng.randint(0, 63)) % 64] for i in range(n))
    return array("d", itertools.accumulate(steps, initial=0.0))[1:]


def build_dataset(total: int, hours: float, end_s: int, seed: int = 7) -> ColumnStorage:
    """The Soulcaster metrics, ``total`` series in all, ending at ``end_s``."""
    rng = random.Random(seed)
    n = int(hours * 3600 / STEP_S)
    start_s = end_s - (n - 1) * STEP_S
    storage = ColumnStorage([(start_s + i * STEP_S) * 1000 for i in range(n)])
    put = storage.series.__setitem__
    fixed = 0
    for i in range(2):
        put(
            Labels.of(__name__="probe_success", job="backend-health", instance=f"b{i}"),
            array("d", [1.0] * n),
        )
        put(Labels.of(__name__="redis_up", instance=f"r{i}"), array("d", [1.0] * n))
        fixed += 2
    put(Labels.of(__name__="e2b_sandbox_hours_used"), array("d", (i * 0.001 for i in range(n))))
    put(Labels.of(__name__="e2b_sandbox_hours_quota"), array("d", [100.0] * n))
    for status in ("pending", "running"):
        put(
            Labels.of(__name__="soulcaster_agent_job_oldest_age_seconds", status=status),
            array("d", (float(i % 80 * STEP_S) for i in range(n))),
        )
    for p in range(4):
        put(
            Labels.of(__name__="soulcaster_reddit_newest_item_timestamp_seconds", project=f"p{p}"),
            array("d", (float(start_s + i * STEP_S - 600) for i in range(n))),
        )
    fixed += 8
    for outcome in ("success", "failed"):
        for category in ("none", "pr_creation", "sandbox_timeout", "linter", "exit_code"):
            put(
                Labels.of(
                    __name__="soulcaster_agent_jobs_finished_total",
                    outcome=outcome,
                    category=category,
                ),
                _counter(rng, n, 0.01),
            )
            fixed += 1
    remaining = total - fixed
    hist_routes = max(1, remaining * 2 // 5 // (len(BUCKETS) + 0))
    req_series = remaining - hist_routes * len(BUCKETS)
    methods, statuses = ("GET", "POST", "PUT", "DELETE"), ("200", "201", "400", "404", "500", "503")
    for k in range(req_series):
        job = ("backend", "dashboard")[k % 2]
        route = f"/api/r{k // (len(methods) * len(statuses) * 2)}"
        put(
            Labels.of(
                __name__="http_requests_total",
                job=job,
                method=methods[k // 2 % 4],
                route=route,
                status=statuses[k // 8 % 6],
            ),
            _counter(rng, n, 0.5 if k // 8 % 6 < 4 else 0.02),
        )
    for r in range(hist_routes):
        job = ("backend", "dashboard")[r % 2]
        counts = _counter(rng, n, 1.0)
        for b, le in enumerate(BUCKETS):
            share = (b + 1) / len(BUCKETS)
            put(
                Labels.of(
                    __name__="http_request_duration_seconds_bucket",
                    job=job,
                    route=f"/api/h{r}",
                    le=le,
                ),
                array("d", (float(int(c * share)) for c in counts)),
            )
    storage.index()
    return storage


def write_openmetrics(storage: ColumnStorage, path: Path) -> int:
    """Write every sample as OpenMetrics text; returns the sample count."""
    seconds = [str(t // 1000) for t in storage.timestamps]
    count = 0
    with path.open("w", encoding="utf-8") as out:
        for labels in sorted(storage.series, key=lambda lbls: (lbls.name, lbls)):
            inner = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
            prefix = f"{labels.name}{{{inner}}} "
            values = storage.series[labels]
            out.write(
                "\n".join(prefix + repr(v) + " " + s for v, s in zip(values, seconds, strict=True))
            )
            out.write("\n")
            count += len(values)
        out.write("# EOF\n")
    return count


def _timed_prometheus(
    call: Callable[[], list[dict[str, Any]]], reps: int
) -> tuple[list[float], list[float]]:
    """Round-trip times and Prometheus's own ``execTotalTime`` (engine only)."""
    call()  # warm-up
    wall, engine = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        bodies = call()
        wall.append(time.perf_counter() - t0)
        engine.append(sum(b["data"]["stats"]["timings"]["execTotalTime"] for b in bodies))
    return wall, engine


def _timed(fn: object, reps: int) -> list[float]:
    assert callable(fn)
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


class Prometheus:
    """A real Prometheus over backfilled blocks, on 127.0.0.1; stop() always."""

    def __init__(self, storage: ColumnStorage, workdir: Path) -> None:
        self.workdir = workdir
        om = workdir / "data.om"
        t0 = time.perf_counter()
        self.samples = write_openmetrics(storage, om)
        self.write_s = time.perf_counter() - t0
        data = workdir / "data"
        t0 = time.perf_counter()
        subprocess.run(
            ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(data)],
            check=True,
            capture_output=True,
            timeout=3600,
        )
        self.backfill_s = time.perf_counter() - t0
        om.unlink()
        config = workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 15s\n", encoding="utf-8")
        self.port = _free_port()
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=60d",
                "--log.level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=300)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.client.get("/-/ready").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus did not become ready within 120 s")

    def query(self, expr: str, t_s: float) -> dict[str, Any]:
        """An instant query with Prometheus's own timing stats; raises on an error status."""
        params = {"query": _v2(expr), "time": t_s, "stats": "all"}
        r = self.client.get("/api/v1/query", params=params)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def query_range(self, expr: str, start_s: float, end_s: float, step_s: float) -> dict[str, Any]:
        """A range query with timing stats; raises on an error status."""
        r = self.client.get(
            "/api/v1/query_range",
            params={
                "query": _v2(expr),
                "start": start_s,
                "end": end_s,
                "step": step_s,
                "stats": "all",
            },
        )
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stop the server and close the client."""
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


def _v2(expr: str) -> str:
    """``expr`` as Prometheus 2.x spells it: Prometheus 3 renamed ``holt_winters``."""
    return expr.replace("double_exponential_smoothing(", "holt_winters(")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fmt(samples: list[float]) -> str:
    median, low, high = (x * 1000 for x in (statistics.median(samples), min(samples), max(samples)))
    return f"{median:.2f} ms ({low:.1f}-{high:.1f})"


def run(total: int, hours: float, reps: int, with_prometheus: bool) -> list[str]:
    """Benchmark one dataset size; returns the table rows."""
    end_s = (int(time.time()) // 3600 - 1) * 3600
    t0 = time.perf_counter()
    storage = build_dataset(total, hours, end_s)
    build_s = time.perf_counter() - t0
    # The dataset is long-lived: keep the cyclic GC from re-scanning it on every
    # collection (a real TSDB keeps samples in chunks, not Python objects).
    gc.collect()
    gc.freeze()
    n_series = len(storage.series)
    print(
        f"# {n_series} series x {len(storage.timestamps)} samples, built in {build_s:.1f}s",
        file=sys.stderr,
    )
    engine = Engine(storage)  # type: ignore[arg-type]
    # The step-by-step evaluation (no array path): the "before" column.
    reference = Engine(storage, columnar=False)  # type: ignore[arg-type]
    # Queries run between two scrapes: Prometheus 2.x windows are closed
    # [t - range, t] and 3.x's (soulwatch's) are left-open, which differ only
    # when a sample sits exactly on the window's start.
    at_s = end_s - 7
    end_ms = at_s * 1000
    console = hours >= 24
    ours: dict[str, list[float]] = {}
    before: dict[str, list[float]] = {}
    for eng, times in ((reference, before), (engine, ours)):
        for name, expr in RULES.items():
            times[name] = _timed(lambda e=expr, g=eng: g.instant(e, end_ms), reps)
        times["whole rule set"] = _timed(
            lambda g=eng: [g.instant(e, end_ms) for e in RULES.values()], reps
        )
        for name, expr in RANGE_QUERIES.items():
            times[name] = _timed(
                lambda e=expr, g=eng: g.range(e, end_ms - 3_600_000, end_ms, STEP_S * 1000), reps
            )
        if console:
            times[CONSOLE] = _timed(
                lambda g=eng: [
                    g.range(e, end_ms - 86_400_000, end_ms, CONSOLE_STEP_S * 1000)
                    for e in CONSOLE_PANELS
                ],
                reps,
            )
    theirs: dict[str, tuple[list[float], list[float]]] = {}
    if with_prometheus:
        workdir = Path(tempfile.mkdtemp(prefix="soulwatch-bench-"))
        prom = None
        try:
            prom = Prometheus(storage, workdir)
            print(
                f"# prometheus: {prom.samples} samples written in {prom.write_s:.0f}s, "
                f"backfilled in {prom.backfill_s:.0f}s",
                file=sys.stderr,
            )
            _check_same(engine, prom, at_s)
            p = prom
            for name, expr in RULES.items():
                theirs[name] = _timed_prometheus(lambda e=expr: [p.query(e, at_s)], reps)
            theirs["whole rule set"] = _timed_prometheus(
                lambda: [p.query(e, at_s) for e in RULES.values()], reps
            )
            for name, expr in RANGE_QUERIES.items():
                theirs[name] = _timed_prometheus(
                    lambda e=expr: [p.query_range(e, at_s - 3600, at_s, STEP_S)], reps
                )
            if console:
                theirs[CONSOLE] = _timed_prometheus(
                    lambda: [
                        p.query_range(e, at_s - 86_400, at_s, CONSOLE_STEP_S)
                        for e in CONSOLE_PANELS
                    ],
                    reps,
                )
        finally:
            if prom is not None:
                prom.stop()
            shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for name, samples in ours.items():
        start = f"| {n_series} | {name} | {_fmt(before[name])} | {_fmt(samples)} "
        if name in theirs:
            wall, engine_only = theirs[name]
            ratio = statistics.median(samples) / statistics.median(engine_only)
            rows.append(f"{start}| {_fmt(engine_only)} | {_fmt(wall)} | {ratio:.2f} |")
        else:
            rows.append(f"{start}| - | - | - |")
    return rows


#: The rules' values before their thresholds: both engines must agree on them.
CHECKS = (
    'probe_success{job="backend-health"}',
    'sum by (job) (rate(http_requests_total{status=~"5.."}[5m]))'
    " / sum by (job) (rate(http_requests_total[5m]))",
    'sum(increase(soulcaster_agent_jobs_finished_total{outcome="failed"}[15m]))'
    " / sum(increase(soulcaster_agent_jobs_finished_total[15m]))",
    "histogram_quantile(0.95, sum by (le, job) (rate(http_request_duration_seconds_bucket[5m])))",
    "time() - soulcaster_reddit_newest_item_timestamp_seconds",
    "e2b_sandbox_hours_used / e2b_sandbox_hours_quota",
    "rate(http_requests_total[5m])",
    "quantile_over_time(0.95, http_requests_total[5m])",
    "topk(5, rate(http_requests_total[5m]))",
    "quantile(0.9, rate(http_requests_total[5m]))",
    "double_exponential_smoothing(http_requests_total[5m], 0.5, 0.5)",
)


def _check_same(engine: Engine, prom: Prometheus, end_s: int) -> None:
    """Both engines must give the same values before their speed is compared."""
    for expr in CHECKS:
        ours = engine.instant(expr, end_s * 1000).value
        assert isinstance(ours, list)
        got = {str(s.labels): s.value for s in ours if isinstance(s, Sample)}
        data = prom.query(expr, end_s)["data"]
        assert isinstance(data, dict)
        want = {str(Labels(r["metric"].items())): float(r["value"][1]) for r in data["result"]}
        if set(got) != set(want):
            raise AssertionError(f"{expr}: series differ: {sorted(set(got) ^ set(want))[:3]}")
        for key, value in want.items():
            mine = got[key]
            same = mine == value or abs(mine - value) <= 1e-9 * max(1.0, abs(value))
            if not same and not (math.isnan(mine) and math.isnan(value)):
                raise AssertionError(f"{expr}: {key}: soulwatch {mine}, Prometheus {value}")


def main() -> int:
    """Parse arguments, run each size and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--no-prometheus", action="store_true")
    args = parser.parse_args()
    with_prom = not args.no_prometheus and shutil.which("prometheus") and shutil.which("promtool")
    print(
        "| series | query | soulwatch step by step (before) | soulwatch columnar (after) "
        "| Prometheus 2.42 engine (execTotalTime) | Prometheus 2.42 HTTP round trip "
        "| soulwatch after / Prometheus engine |"
    )
    print("|---|---|---|---|---|---|---|")
    for total in args.series:
        for row in run(total, args.hours, args.reps, bool(with_prom)):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
