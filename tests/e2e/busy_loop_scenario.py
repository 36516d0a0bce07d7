"""A real ``soulwatch run`` under heavy queries, and what its users see meanwhile.

Shared by ``tests/e2e/test_busy_loop.py`` (which asserts that nothing waits
for the heavy work) and ``benchmarks/busy_loop.py`` (which times the same
run against the 100 ms goal).

The monitor serves two hours of 7,000 series with a recording rule that
takes seconds (a subquery over every series at a 1 s step, every 5 s) and,
at the same time, an API range query of several seconds (50 series × 7,000
points, a 9 MB answer). Meanwhile, for at least :data:`WINDOW_S`, one client
measures what a user would: ``/-/healthy``, a heartbeat ping
(``POST /ping/<uuid>``), ``soulwatch_event_loop_lag_seconds``, and when the
monitor's scrapes (every 1 s) reach a target served from this process.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from soulwatch.clock import SystemClock
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels
from tests.helpers import UvicornThread, free_port, soulwatch_command, started, subprocess_env
from tests.sources.support import Exposition, metrics_app

UUID = "5f0c0d6e-3b1a-4c55-8f7e-2d9a1b3c4e5f"
SERIES = 7000
MINUTES = 120
#: A subquery over every series at a fine step: seconds of PromQL, no regex.
HEAVY_RULE = "max_over_time(sum by (instance) (rate(heavy_total[10m]))[2h:1s])"
HEAVY_QUERY = "sum by (instance) (rate(heavy_total[10m]))"
#: The shortest time the user's checks run for (they go on until the API query ends).
WINDOW_S = 12.0
#: Pause between two rounds of the user's checks.
ROUND_PAUSE_S = 0.1


def fill(data_dir: Path, now: float) -> None:
    """Two hours of a counter per series, one sample a minute, written before the monitor runs."""
    db = TSDB(StorageConfig(path=data_dir / "tsdb"), clock=SystemClock())
    try:
        start_ms = int((now - MINUTES * 60) * 1000)
        for minute in range(MINUTES):
            app = db.appender()
            for n in range(SERIES):
                labels = Labels.of(__name__="heavy_total", instance=f"i{n % 50}", n=str(n))
                app.append(labels, start_ms + minute * 60_000, float(minute * (n + 1)))
            app.commit()
    finally:
        db.close()


class _Arrivals:
    """ASGI middleware noting when each HTTP request arrives (the scrape schedule, as seen)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[float] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.times.append(time.monotonic())
        await self.app(scope, receive, send)


@dataclass
class BusyMonitor:
    """A running monitor with its heavy rule evaluating, and the client that measures it."""

    base: str
    port: int
    client: httpx.Client
    target: Exposition
    arrivals: _Arrivals
    log: Path
    now: float
    pid: int

    def metric(self, line_prefix: str) -> float:
        """The value of the first line of ``/metrics`` starting with ``line_prefix``."""
        for line in self.client.get(f"{self.base}/metrics").text.splitlines():
            if line.startswith(line_prefix):
                return float(line.split()[1])
        raise AssertionError(f"{line_prefix.strip()} is not exported")

    def loop_lag(self) -> float:
        """``soulwatch_event_loop_lag_seconds`` now."""
        return self.metric("soulwatch_event_loop_lag_seconds ")

    def queries_running(self) -> float:
        """API queries running in the query pool now."""
        return self.metric('soulwatch_worker_calls_running{pool="queries"} ')

    def heavy_group_seconds(self) -> float:
        """How long the heavy rule group's last evaluation took (0 before the first)."""
        (group,) = self.client.get(f"{self.base}/api/v1/rules").json()["data"]["groups"]
        return float(group["evaluationTime"])

    def heavy_query(self, **params: str) -> httpx.Response:
        """The heavy API range query (step 1 s over almost two hours)."""
        query = {"query": HEAVY_QUERY, "start": self.now - 7000, "end": self.now, "step": "1"}
        return self.client.get(f"{self.base}/api/v1/query_range", params={**query, **params})


@dataclass
class Measured:
    """What the user saw while the heavy rule and the heavy API query ran."""

    evaluation_s: float
    query_s: float
    query_status: int
    query_success: bool
    health: list[float] = field(default_factory=list)
    pings: list[float] = field(default_factory=list)
    lags: list[float] = field(default_factory=list)
    #: When each scrape reached the target (monotonic, this process).
    scrapes: list[float] = field(default_factory=list)
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def scrape_gaps(self) -> list[float]:
        """Seconds between consecutive scrapes."""
        return [b - a for a, b in itertools.pairwise(self.scrapes)]


@contextlib.contextmanager
def busy_monitor(workdir: Path) -> Iterator[BusyMonitor]:
    """Fill ``workdir``, start ``soulwatch run`` there, and yield once the heavy rule has run."""
    now = time.time()
    fill(workdir / "data", now)
    (workdir / "rules.yml").write_text(
        "groups:\n  - name: heavy\n    interval: 5s\n    rules:\n"
        f"      - record: heavy:rate_max\n        expr: '{HEAVY_RULE}'\n"
    )
    target = Exposition("temperature 21.5\n")
    arrivals = _Arrivals(metrics_app(metrics=target))
    with UvicornThread(arrivals) as app:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        (workdir / "soulwatch.yaml").write_text(
            f"listen: 127.0.0.1:{port}\ndata_dir: data\n"
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 5s}\n"
            "api: {query_timeout: 2m}\n"
            "rule_files: [rules.yml]\n"
            f"scrape_configs:\n  - job_name: app\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{app.port}']}}]\n"
            f"heartbeats:\n  checks:\n    - {{name: poller, uuid: {UUID}, period: 1h}}\n"
        )
        argv = soulwatch_command(
            "run", "-c", str(workdir / "soulwatch.yaml"), "--log-format", "json"
        )
        log = workdir / "output.log"
        ready = lambda: httpx.get(f"{base}/-/ready", timeout=1).status_code == 200  # noqa: E731
        with (
            started(
                argv, env=subprocess_env(), cwd=str(workdir), ready=ready, timeout=60, output=log
            ) as process,
            httpx.Client(timeout=60) as client,
        ):
            monitor = BusyMonitor(base, port, client, target, arrivals, log, now, process.pid)
            # The heavy group has evaluated once: its evaluations are now under way.
            deadline = time.monotonic() + 120
            while monitor.heavy_group_seconds() == 0:
                assert time.monotonic() < deadline, "the heavy rule never evaluated"
                time.sleep(0.2)
            yield monitor


def _timed(client: httpx.Client, method: str, url: str) -> float:
    started_at = time.monotonic()
    response = client.request(method, url)
    seconds = time.monotonic() - started_at
    assert response.status_code == 200, (url, response.status_code, response.text)
    return seconds


def measure(monitor: BusyMonitor) -> Measured:
    """Run the heavy API query and, until it ends (at least :data:`WINDOW_S`), the user's checks."""
    answer: dict[str, Any] = {}

    def query() -> None:
        t0 = time.monotonic()
        r = monitor.heavy_query()
        answer["seconds"] = time.monotonic() - t0
        # Not r.json(): decoding 9 MB here would hold this process's GIL for a
        # second, and the timings below (and the scraped target, served from
        # this process) would measure that instead.
        answer["status"] = r.status_code
        answer["success"] = r.content.startswith(b'{"status":"success"')

    load_before = os.getloadavg()
    first_scrape = len(monitor.arrivals.times)
    heavy = threading.Thread(target=query)
    heavy.start()
    health: list[float] = []
    pings: list[float] = []
    lags: list[float] = []
    base = monitor.base
    window_end = time.monotonic() + WINDOW_S
    while time.monotonic() < window_end or heavy.is_alive():
        health.append(_timed(monitor.client, "GET", f"{base}/-/healthy"))
        pings.append(_timed(monitor.client, "POST", f"{base}/ping/{UUID}"))
        lags.append(monitor.loop_lag())
        time.sleep(ROUND_PAUSE_S)
        assert time.monotonic() < window_end + 120, "the heavy query never finished"
    heavy.join()
    return Measured(
        evaluation_s=monitor.heavy_group_seconds(),
        query_s=answer["seconds"],
        query_status=answer["status"],
        query_success=answer["success"],
        health=health,
        pings=pings,
        lags=lags,
        scrapes=list(monitor.arrivals.times[first_scrape:]),
        load_before=load_before,
        load_after=os.getloadavg(),
    )
