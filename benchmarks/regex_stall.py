"""A catastrophic regex against the running monitor, beside Prometheus.

``count(x{v=~"(a+)+$"})`` over label values of 29 characters makes a
backtracking engine run for exponential time; soulwatch matches label
regexes with RE2, as Prometheus does with Go's regexp, so it answers at once.
This runs ``soulwatch run`` (a subprocess) over an embedded TSDB holding 200
such series, sends the query (each time with a different, equally bad
pattern so nothing is remembered between requests) with ``timeout=3s``, and
meanwhile probes ``/-/healthy`` every 10 ms. The same queries go to a real
Prometheus over the same series (backfilled with promtool) when installed.

Run: ``.venv/bin/python benchmarks/regex_stall.py [--queries 50]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from api import _free_port, _process, _soulwatch  # noqa: E402
from soulwatch.tsdb.config import StorageConfig  # noqa: E402
from soulwatch.tsdb.db import TSDB  # noqa: E402
from soulwatch.tsdb.model import Labels  # noqa: E402

SERIES = 200


def _values() -> list[str]:
    # 28 a's, then a character that makes every pattern fail only at the very end.
    return ["a" * 28 + "!#%&*+,-.:;"[i % 11] for i in range(SERIES)]


def _patterns(n: int) -> list[str]:
    return [f"(a+)+{'b' * (i % 7)}$" if i % 2 else f"(a|aa)+{'c' * (i % 5)}$" for i in range(n)]


def _run(base: str, patterns: list[str]) -> tuple[list[float], list[float], int]:
    """Query latencies (s), /-/healthy latencies (s) meanwhile, and failed answers."""
    health: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=10) as client:
            while not done.is_set():
                t0 = time.perf_counter()
                client.get(f"{base}/-/healthy")
                health.append(time.perf_counter() - t0)
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    latencies: list[float] = []
    failed = 0
    try:
        with httpx.Client(timeout=30) as client:
            for pattern in patterns:
                t0 = time.perf_counter()
                response = client.get(
                    f"{base}/api/v1/query",
                    params={"query": f'count(x{{v=~"{pattern}"}})', "timeout": "3s"},
                )
                latencies.append(time.perf_counter() - t0)
                failed += response.status_code != 200
    finally:
        done.set()
        prober.join(timeout=30)
    return latencies, health, failed


def _row(name: str, latencies: list[float], health: list[float], failed: int) -> str:
    q = sorted(latencies)
    h = sorted(health)
    return (
        f"| {name} | {statistics.median(q) * 1000:.1f} | {q[-1] * 1000:.1f} | {failed} "
        f"| {len(h)} | {statistics.median(h) * 1000:.1f} | {h[int(len(h) * 0.99) - 1] * 1000:.1f} "
        f"| {h[-1] * 1000:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=50)
    args = parser.parse_args()
    now = int(time.time())
    patterns = _patterns(args.queries)
    rows = []
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-regex-") as tmp:
        workdir = Path(tmp)
        db = TSDB(StorageConfig(path=workdir / "data" / "tsdb"))
        app = db.appender()
        for i, value in enumerate(_values()):
            app.append(Labels.of(__name__="x", v=value, i=str(i)), (now - 60) * 1000, 1.0)
        app.commit()
        db.close()
        port = _free_port()
        config = workdir / "soulwatch.yaml"
        config.write_text(f"listen: 127.0.0.1:{port}\ndata_dir: {workdir / 'data'}\n")
        with _soulwatch(config, port):
            rows.append(_row("soulwatch", *_run(f"http://127.0.0.1:{port}", patterns)))

        prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
        if prometheus and promtool:
            source = workdir / "data.om"
            lines = ["# TYPE x gauge"]
            lines += [f'x{{i="{i}",v="{v}"}} 1 {now - 60}' for i, v in enumerate(_values())]
            source.write_text("\n".join(lines) + "\n# EOF\n")
            pdata = workdir / "prom-data"
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
                rows.append(_row("Prometheus", *_run(f"http://127.0.0.1:{pport}", patterns)))

    print(f"## Catastrophic regex (cpus: {os.cpu_count()}, {args.queries} queries)\n")
    print(f'`count(x{{v=~"(a+)+$"}})` and variants over {SERIES} values of 29 characters.\n')
    print(
        "| server | query p50 ms | query max ms | failed | /-/healthy probes "
        "| healthy p50 ms | healthy p99 ms | healthy max ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
