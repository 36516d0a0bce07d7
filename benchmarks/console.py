"""The console under a realistic load, and its board's queries beside Prometheus.

* Data: 3 h of samples at a 60 s interval for ``--series`` series (10,000 by
  default): the metrics of the Soulcaster preset's board (backend and
  dashboard requests and latency histograms by route and instance, probes,
  Redis, agent jobs, E2B) plus filler series, and 50 series that a rule
  turns into 50 firing alerts, each its own routing group, paged to a local
  webhook receiver.
* ``soulwatch run`` (a subprocess) with the preset's board serves the
  console; each page is fetched ``--runs`` times, sequentially. The server
  time is the page's own ``Server-Timing`` header; the page weight is the
  HTML plus every stylesheet and script it loads.
* The same data is backfilled into a real Prometheus with ``promtool``; the
  board's queries (3 h range, 60 points, as the overview draws them) run
  against both ``/api/v1/query_range`` endpoints, the two engines taking
  turns round after round (both run at once): the time a
  whole board refresh's queries take on each, and the ratio.

Goal: overview under 100 ms of server time and under 300 KB transferred.

Run: ``.venv/bin/python benchmarks/console.py [--series 10000] [--runs 20]``
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from benchmarks.api import _free_port, _process, _soulwatch  # noqa: E402

from soulwatch.api.console.boards import load_board, preset_board_path  # noqa: E402
from soulwatch.tsdb.config import StorageConfig  # noqa: E402
from soulwatch.tsdb.db import TSDB  # noqa: E402
from soulwatch.tsdb.model import Labels  # noqa: E402

HOURS = 3
STEP_S = 60
ALERTS = 50
BOUNDS = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2", "2.5", "5", "+Inf"]


def _series() -> Iterator[tuple[dict[str, str], str, float]]:
    """``(labels, kind, base)`` of the board's metrics (kind: counter, gauge or bucket)."""
    for job in ("backend", "dashboard"):
        for inst in range(5):
            instance = f"{job}-{inst}:8000"
            for route in range(10):
                for status in ("200", "404", "500"):
                    yield (
                        {"__name__": "http_requests_total", "job": job, "instance": instance,
                         "route": f"/r{route}", "status": status},
                        "counter", {"200": 5.0, "404": 0.3, "500": 0.05}[status],
                    )  # fmt: skip
                for j, le in enumerate(BOUNDS):
                    yield (
                        {"__name__": "http_request_duration_seconds_bucket", "job": job,
                         "instance": instance, "route": f"/r{route}", "le": le},
                        "counter", 5.0 * (j + 1) / len(BOUNDS),
                    )  # fmt: skip
            yield (
                {"__name__": "http_requests_in_progress", "job": job, "instance": instance},
                "gauge",
                3.0,
            )
    yield (
        {"__name__": "probe_success", "job": "backend-health", "instance": "http://b/health"},
        "gauge",
        1.0,
    )
    for page in ("/", "/api/health"):
        yield (
            {"__name__": "probe_success", "job": "dashboard-pages", "instance": page},
            "gauge",
            1.0,
        )
    for name, base in (
        ("redis_up", 1.0), ("redis_ping_duration_seconds", 0.004),
        ("redis_used_memory_bytes", 2e8), ("redis_maxmemory_bytes", 1e9),
    ):  # fmt: skip
        yield {"__name__": name, "job": "redis"}, "gauge", base
    yield {"__name__": "redis_connection_errors_total", "job": "redis"}, "counter", 0.0
    yield {"__name__": "heartbeat_up", "check": "reddit-poller"}, "gauge", 1.0
    for status, age in (("running", 200.0), ("pending", 30.0)):
        yield (
            {"__name__": "soulcaster_agent_job_oldest_age_seconds", "status": status},
            "gauge",
            age,
        )
    for outcome, rate in (("success", 0.05), ("failed", 0.005)):
        yield (
            {"__name__": "soulcaster_agent_jobs_finished_total", "outcome": outcome},
            "counter",
            rate,
        )
    yield (
        {"__name__": "soulcaster_reddit_newest_item_timestamp_seconds", "project_id": "p1"},
        "ts",
        0.0,
    )
    for name, base in (("e2b_sandboxes_running", 4.0), ("e2b_sandbox_hours_used", 30.0),
                       ("e2b_sandbox_hours_quota", 100.0)):  # fmt: skip
        yield {"__name__": name}, "gauge", base
    for shard in range(ALERTS):
        yield {"__name__": "bench_alert_source", "shard": f"s{shard:02d}"}, "gauge", 1.0


def _samples(end_s: int, total: int) -> Iterator[tuple[Labels, int, float]]:
    board = list(_series())
    filler = max(0, total - len(board))
    points = HOURS * 3600 // STEP_S
    start = end_s - (points - 1) * STEP_S
    for i in range(points):
        t = start + i * STEP_S
        for labels, kind, base in board:
            if kind == "counter":
                value = base * STEP_S * i
            elif kind == "ts":
                value = float(t - 600)
            else:
                value = base * (1 + 0.1 * ((i % 7) - 3) / 3) if base else base
            yield Labels.of(labels), t, value
        for k in range(filler):
            yield (
                Labels.of(__name__="node_filler", instance=f"n{k // 64}", cpu=str(k % 64)),
                t,
                float(k % 100),
            )


def _openmetrics(samples: Iterator[tuple[Labels, int, float]], path: Path) -> None:
    # promtool wants each series' samples together and in time order.
    by_series: dict[Labels, list[tuple[int, float]]] = {}
    for labels, t, value in samples:
        by_series.setdefault(labels, []).append((t, value))
    with path.open("w") as out:
        by_family: dict[str, list[Labels]] = {}
        for labels in by_series:
            by_family.setdefault(labels.name, []).append(labels)
        for family, members in sorted(by_family.items()):
            # Every family as untyped (gauge): the values are what matters to PromQL.
            out.write(f"# TYPE {family} gauge\n")
            for labels in sorted(members):
                inner = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
                for t, value in by_series[labels]:
                    out.write(f"{family}{{{inner}}} {value!r} {t}\n")
        out.write("# EOF\n")


@contextmanager
def _receiver() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _config(workdir: Path, port: int, data: Path, hook: str) -> Path:
    shutil.copy(preset_board_path(), workdir / "board.yml")
    (workdir / "rules.yml").write_text(
        "groups:\n  - name: bench\n    interval: 15s\n    rules:\n"
        "      - alert: BenchAlert\n        expr: bench_alert_source > 0\n"
        "        labels: {priority: P2}\n"
        "        annotations: {summary: 'shard {{ $labels.shard }} is on fire'}\n"
    )
    config = workdir / "soulwatch.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\ndata_dir: {data}\nrule_files: [rules.yml]\n"
        "global: {evaluation_interval: 15s}\n"
        "console: {boards: [board.yml]}\n"
        "alerting:\n  route:\n    receiver: hook\n    group_by: [alertname, shard]\n"
        "    group_wait: 0s\n    group_interval: 1m\n    repeat_interval: 4h\n"
        f"  receivers:\n    - name: hook\n      webhook_configs: [{{url: '{hook}/hook'}}]\n"
    )
    return config


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def _page(client: httpx.Client, path: str, runs: int) -> tuple[list[float], list[float], str]:
    """Server-Timing and wall times (ms) of ``runs`` fetches, and the last body."""
    server, wall, body = [], [], ""
    for _ in range(runs):
        t0 = time.perf_counter()
        reply = client.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        reply.raise_for_status()
        server.append(float(reply.headers["server-timing"].split("dur=")[1]))
        body = reply.text
    return server, wall, body


def _weight(client: httpx.Client, html: str) -> tuple[int, int]:
    """Bytes of the page and of everything it loads, uncompressed and gzip-compressed."""
    import gzip

    assets = re.findall(r'(?:href|src)="(/-/console/static/[^"]+)"', html)
    raw = len(html.encode())
    packed = len(gzip.compress(html.encode()))
    for asset in assets:
        body = client.get(asset).content
        raw += len(body)
        packed += len(gzip.compress(body))
    return raw, packed


def _board_queries(bases: list[str], exprs: list[str], end: int, runs: int) -> list[list[float]]:
    """Seconds each full set of board queries took (one overview refresh's worth), per base.

    The engines take turns, round after round, so that the load of a shared
    machine weighs on both alike.
    """
    start = end - HOURS * 3600
    step = HOURS * 3600 // 60
    clients = [httpx.Client(base_url=base, timeout=120) for base in bases]
    totals: list[list[float]] = [[] for _ in bases]
    try:
        for base, client in zip(bases, clients, strict=True):
            for expr in exprs:  # warm-up, and a check that each query works
                body = client.get(
                    "/api/v1/query_range",
                    params={"query": expr, "start": start, "end": end, "step": step},
                ).json()
                if body["status"] != "success":
                    raise SystemExit(f"{base}: {expr}: {body}")
        for _ in range(runs):
            for client, times in zip(clients, totals, strict=True):
                t0 = time.perf_counter()
                for expr in exprs:
                    client.get(
                        "/api/v1/query_range",
                        params={"query": expr, "start": start, "end": end, "step": step},
                    ).raise_for_status()
                times.append(time.perf_counter() - t0)
    finally:
        for client in clients:
            client.close()
    return totals


def _prometheus(workdir: Path, end_s: int, series: int) -> contextlib.AbstractContextManager[str]:
    """A real Prometheus over the same data (backfilled by promtool); yields its URL."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if prometheus is None or promtool is None:
        raise SystemExit("prometheus and promtool are needed for the comparison")
    pdata = workdir / "prom-data"
    pdata.mkdir()
    source = workdir / "data.om"
    _openmetrics(_samples(end_s, series), source)
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(pdata)],
        check=True, capture_output=True,
    )  # fmt: skip
    source.unlink()
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    pport = _free_port()
    argv = [
        prometheus, f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={pdata}", f"--web.listen-address=127.0.0.1:{pport}",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{pport}"

    @contextmanager
    def running() -> Iterator[str]:
        with _process(argv, f"{url}/-/ready"):
            yield url

    return running()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    board = load_board(preset_board_path())
    exprs = [p.expr for r in board.rows for p in r.panels]
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-console-") as tmp, _receiver() as hook:
        workdir = Path(tmp)
        end_s = int(time.time()) - 30
        data = workdir / "data"
        db = TSDB(StorageConfig(path=data / "tsdb"))
        app = db.appender()
        count = 0
        for labels, t, value in _samples(end_s, args.series):
            app.append(labels, t * 1000, value)
            count += 1
        app.commit()
        series = max(args.series, len(list(_series())))
        db.close()
        port = _free_port()
        config = _config(workdir, port, data, hook)
        base = f"http://127.0.0.1:{port}"
        with _soulwatch(config, port), httpx.Client(base_url=base, timeout=60) as client:
            # The very first view, as soon as soulwatch answers /-/ready: it races the
            # background warm-up of the sparklines (and waits for it when it is behind).
            at_ready = _page(client, "/", 1)[0][0]
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                alerts = client.get("/api/v1/alerts").json()["data"]["alerts"]
                if sum(a["state"] == "firing" for a in alerts) >= ALERTS:
                    break
                time.sleep(0.5)
            else:
                raise SystemExit("the 50 alerts did not fire")
            time.sleep(2)  # their notifications reach the outbox
            overview = _page(client, "/", args.runs)
            alerts_page = _page(client, "/alerts", args.runs)
            group = re.search(r"/alerts/group/([0-9a-f]{64})", alerts_page[2])
            assert group, "no alert group on the alerts page"
            group_page = _page(client, f"/alerts/group/{group.group(1)}", args.runs)
            weight = _weight(client, overview[2])
            rounds = max(3, args.runs // 4)
            theirs: list[float] | None = None
            if shutil.which("prometheus") and shutil.which("promtool"):
                with _prometheus(workdir, end_s, args.series) as peer:
                    ours, theirs = _board_queries([base, peer], exprs, end_s, rounds)
            else:
                (ours,) = _board_queries([base], exprs, end_s, rounds)

    print(
        f"## Console (cpus: {os.cpu_count()}, {series:,} series, {count:,} samples,"
        f" {ALERTS} firing alerts)\n"
    )
    print(
        f"### Pages, {args.runs} fetches each (server time from Server-Timing;"
        " percentiles over the fetches after the first)\n"
    )
    print("| page | first fetch ms | server p50 ms | server p99 ms | wall p50 ms | HTML KB |")
    print("|---|---|---|---|---|---|")
    for name, (server_ms, wall_ms, body) in (
        ("overview (Soulcaster board, 21 panels)", overview),
        ("alerts (50 groups)", alerts_page),
        ("alert group page", group_page),
    ):
        # The first fetch after the alerts fired (the sparklines were warmed in the
        # background meanwhile); the rest are refreshes.
        rest = server_ms[1:] or server_ms
        print(
            f"| {name} | {server_ms[0]:.1f} | {_pct(rest, 0.5):.1f} | {_pct(rest, 0.99):.1f} |"
            f" {_pct(wall_ms, 0.5):.1f} | {len(body.encode()) / 1024:.1f} |"
        )
    print(
        f"\nFirst overview at /-/ready (the sparklines' warm-up still running): {at_ready:.1f} ms"
    )
    print(
        f"\nOverview page weight (HTML + CSS + JS + uPlot): {weight[0] / 1024:.0f} KB,"
        f" {weight[1] / 1024:.0f} KB gzip-compressed (goal < 300 KB)\n"
    )
    print(f"### The board's {len(exprs)} queries (3 h, 60 points each), one refresh\n")
    print("| engine | p50 ms | min ms | max ms |")
    print("|---|---|---|---|")
    rows = [("soulwatch", ours)] + ([("Prometheus", theirs)] if theirs else [])
    for engine, times in rows:
        ms = [t * 1000 for t in times]
        print(f"| {engine} | {statistics.median(ms):.0f} | {min(ms):.0f} | {max(ms):.0f} |")
    if theirs:
        ratio = statistics.median(ours) / statistics.median(theirs)
        print(f"\nratio soulwatch / Prometheus (p50): {ratio:.1f}×")
    else:
        print("| Prometheus | n/a (not installed) | | |")


if __name__ == "__main__":
    main()
