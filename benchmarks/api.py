"""The HTTP API under load: heartbeat pings, and a dashboard's range query beside Prometheus.

* Pings: ``soulwatch run`` (a subprocess, its own core) with 200 heartbeat
  checks; 200 concurrent clients, one per check, ping back to back over
  keep-alive connections. Reports requests/s and latency percentiles.
* ``/api/v1/query_range``: the same 6 h of samples (120 series every 15 s)
  written into soulwatch's embedded TSDB and backfilled into a real
  Prometheus with promtool; each serves the same dashboard panel queries
  (6 h, 30 s step: 721 points per series), sequentially. Reports p50/p99
  per query and the ratio soulwatch / Prometheus.

Run: ``.venv/bin/python benchmarks/api.py [--repeats 3] [--pings 20000] [--queries 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from soulwatch.tsdb.config import StorageConfig  # noqa: E402
from soulwatch.tsdb.db import TSDB  # noqa: E402
from soulwatch.tsdb.model import Labels  # noqa: E402

CHECKS = 200
HOURS = 6
STEP_S = 15
QUERIES = {
    "sum by (code) rate 5m": "sum by (code) (rate(http_requests_total[5m]))",
    "p95 histogram_quantile": (
        "histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))"
    ),
    "raw gauge, 40 series": "temperature_celsius",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not become ready in {timeout}s")


@contextmanager
def _process(argv: list[str], ready: str, env: dict[str, str] | None = None) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait(ready)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _soulwatch(config: Path, port: int) -> Iterator[None]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    argv = [sys.executable, "-m", "soulwatch", "run", "-c", str(config), "--log-format", "json"]
    return _process(argv, f"http://127.0.0.1:{port}/-/ready", env)


# -- data -------------------------------------------------------------------------------


def _samples(end_s: int) -> Iterator[tuple[Labels, int, float]]:
    points = HOURS * 3600 // STEP_S
    start = end_s - points * STEP_S
    bounds = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"]
    for i in range(points):
        t = start + i * STEP_S
        for inst in range(10):
            instance = f"10.0.0.{inst}:8000"
            for code in ("200", "201", "404", "500"):
                labels = Labels.of(
                    __name__="http_requests_total", job="api", instance=instance, code=code
                )
                yield labels, t, float(i * (inst + 1) * (3 if code == "200" else 1))
            cum = 0.0
            for j, le in enumerate(bounds):
                cum += float(i * (7 - j) + inst)
                labels = Labels.of(
                    __name__="http_request_duration_seconds_bucket",
                    job="api",
                    instance=instance,
                    le=le,
                )
                yield labels, t, cum
        for k in range(40):
            labels = Labels.of(__name__="temperature_celsius", job="sensors", instance=f"s{k}")
            yield labels, t, 20.0 + (i + k) % 17 * 0.5


def _openmetrics(end_s: int) -> str:
    by_family: dict[str, list[str]] = {}
    kinds = {
        "http_requests": "counter",
        "http_request_duration_seconds": "histogram",
        "temperature_celsius": "gauge",
    }
    rows = sorted(_samples(end_s), key=lambda s: (s[0], s[1]))
    for labels, t, value in rows:
        name = labels.name
        family = next(f for f in kinds if name.startswith(f))
        inner = ",".join(f'{n}="{v}"' for n, v in labels if n != "__name__")
        by_family.setdefault(family, []).append(f"{name}{{{inner}}} {value!r} {t}")
    out = []
    for family, lines in by_family.items():
        out.append(f"# TYPE {family} {kinds[family]}")
        if kinds[family] == "histogram":
            # OpenMetrics histograms need _count and _sum; add them from +Inf.
            extra = []
            for line in lines:
                if 'le="+Inf"' in line:
                    series, value, t = line.rsplit(" ", 2)
                    base = series.replace(',le="+Inf"', "").replace("_bucket", "")
                    extra.append(f"{base.replace('{', '_count{', 1)} {value} {t}")
                    extra.append(f"{base.replace('{', '_sum{', 1)} {float(value) * 0.2!r} {t}")
            out.extend(sorted(lines + extra, key=_series_then_time))
        else:
            out.extend(lines)
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _series_then_time(line: str) -> tuple[str, int]:
    series, _, t = line.rsplit(" ", 2)
    return series, int(t)


# -- pings --------------------------------------------------------------------------------


async def _ping_load(port: int, uuids: list[str], total: int) -> tuple[float, list[float]]:
    # A bare keep-alive HTTP/1.1 client: httpx's own overhead would be measured instead.
    per_client = total // len(uuids)
    latencies: list[float] = []

    async def worker(check: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = f"GET /ping/{check} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
        try:
            for _ in range(per_client):
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200") or body != b"OK":
                    raise SystemExit(f"ping answered {head[:40]!r} {body!r}")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(u) for u in uuids))
    elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def bench_pings(workdir: Path, repeats: int, total: int) -> list[tuple[float, float, float]]:
    uuids = [str(uuid.uuid4()) for _ in range(CHECKS)]
    port = _free_port()
    checks = "".join(
        f"\n    - {{name: job-{i}, uuid: {u}, period: 1h}}" for i, u in enumerate(uuids)
    )
    config = workdir / "pings.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\ndata_dir: ping-data\nheartbeats:\n  checks:{checks}\n"
    )
    results = []
    with _soulwatch(config, port):
        asyncio.run(_ping_load(port, uuids, CHECKS * 5))  # warm-up
        for _ in range(repeats):
            rps, lat = asyncio.run(_ping_load(port, uuids, total))
            results.append((rps, _pct(lat, 0.5) * 1000, _pct(lat, 0.99) * 1000))
    return results


# -- query_range ---------------------------------------------------------------------------


def _time_queries(base: str, start: int, end: int, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with httpx.Client(base_url=base, timeout=120) as client:
        for name, query in QUERIES.items():
            params = {"query": query, "start": start, "end": end, "step": 30}
            first = client.get("/api/v1/query_range", params=params).json()
            if first["status"] != "success" or not first["data"]["result"]:
                raise SystemExit(f"{base}: {name} failed or empty: {str(first)[:300]}")
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                client.get("/api/v1/query_range", params=params).raise_for_status()
                times.append(time.perf_counter() - t0)
            out[name] = times
    return out


def bench_queries(
    workdir: Path, n: int
) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    end_s = (int(time.time()) // 60) * 60 - 120
    start_s = end_s - HOURS * 3600 + 60
    data = workdir / "query-data"
    db = TSDB(StorageConfig(path=data / "tsdb"))
    app = db.appender()
    for labels, t, value in _samples(end_s):
        app.append(labels, t * 1000, value)
    app.commit()
    db.close()
    port = _free_port()
    config = workdir / "query.yaml"
    config.write_text(f"listen: 127.0.0.1:{port}\ndata_dir: {data}\n")
    with _soulwatch(config, port):
        ours = _time_queries(f"http://127.0.0.1:{port}", start_s, end_s, n)

    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prometheus or not promtool:
        return ours, None
    pdata = workdir / "prom-data"
    pdata.mkdir()
    source = workdir / "data.om"
    source.write_text(_openmetrics(end_s))
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(source), str(pdata)],
        check=True,
        capture_output=True,
    )
    (workdir / "prometheus.yml").write_text("global: {scrape_interval: 1m}\n")
    pport = _free_port()
    argv = [
        prometheus,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={pdata}",
        f"--web.listen-address=127.0.0.1:{pport}",
    ]
    with _process(argv, f"http://127.0.0.1:{pport}/-/ready"):
        theirs = _time_queries(f"http://127.0.0.1:{pport}", start_s, end_s, n)
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pings", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-api-") as tmp:
        workdir = Path(tmp)
        pings = bench_pings(workdir, args.repeats, args.pings)
        ours, theirs = bench_queries(workdir, args.queries)

    print(f"## API (cpus: {os.cpu_count()}, {args.repeats} repeats)\n")
    print(f"### Heartbeat pings: {CHECKS} concurrent checks, {args.pings} pings per repeat\n")
    print("| repeat | requests/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for i, (rps, p50, p99) in enumerate(pings, 1):
        print(f"| {i} | {rps:,.0f} | {p50:.1f} | {p99:.1f} |")
    rates = [r for r, _, _ in pings]
    print(
        f"\nmedian {statistics.median(rates):,.0f} req/s "
        f"(spread {min(rates):,.0f}–{max(rates):,.0f})\n"
    )
    print(f"### /api/v1/query_range, {HOURS} h at 30 s step, {args.queries} runs each\n")
    print("| query | soulwatch p50 ms | p99 ms | Prometheus p50 ms | p99 ms | ratio (p50) |")
    print("|---|---|---|---|---|---|")
    for name in QUERIES:
        mine = ours[name]
        row = f"| {name} | {_pct(mine, 0.5) * 1000:.1f} | {_pct(mine, 0.99) * 1000:.1f} |"
        if theirs is None:
            row += " n/a | n/a | n/a |"
        else:
            peer = theirs[name]
            ratio = _pct(mine, 0.5) / _pct(peer, 0.5)
            row += f" {_pct(peer, 0.5) * 1000:.1f} | {_pct(peer, 0.99) * 1000:.1f} | {ratio:.1f}× |"
        print(row)


if __name__ == "__main__":
    main()
