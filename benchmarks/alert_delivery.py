"""Alert delivery: soulwatch's dispatcher + outbox next to a real Alertmanager.

1. Latency: an alert becomes firing (handed to soulwatch's dispatcher, or
   POSTed to Alertmanager's /api/v2/alerts) -> a local webhook receives the
   notification. Both with group_wait 0s; p50/p99 over many alerts.
2. Outbox throughput with a receiver answering 429 (Retry-After: 0) to half
   of the requests: notifications/s until every one is accepted, and how many
   were accepted in the end (Alertmanager's webhook does not retry a 429).

Run: python benchmarks/alert_delivery.py [--alerts 200] [--burst 1000] [--repeat 3]
Needs /usr/bin/prometheus-alertmanager for the peer column (skipped if absent).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from soulwatch.alerting.config import parse_config
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.notifiers.factory import build_notifiers
from soulwatch.alerting.outbox import Outbox
from soulwatch.alerts import Alert
from soulwatch.clock import SystemClock
from soulwatch.tsdb.model import Labels


def serve(port: int, reject_fraction: float, seed: int = 1) -> None:
    """The webhook receiver process: timestamps arrivals, answers 429 to a fraction.

    It runs in its own process so that it does not share a GIL with the peer
    being measured. ``GET /_stats`` returns what it saw.
    """
    arrivals: dict[str, float] = {}
    accepted: set[str] = set()
    requests = [0]
    lock = threading.Lock()
    rng = random.Random(seed)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with lock:
                body = json.dumps(
                    {"arrivals": arrivals, "accepted": sorted(accepted), "requests": requests[0]}
                ).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            now = time.time()
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            names = [a["labels"]["alertname"] for a in body["alerts"]]
            with lock:
                requests[0] += 1
                reject = rng.random() < reject_fraction
                for name in names:
                    arrivals.setdefault(name, now)
                    if not reject:
                        accepted.add(name)
            self.send_response(429 if reject else 200)
            if reject:
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # the default 5 refuses concurrent connections

    Server(("127.0.0.1", port), Handler).serve_forever()


class Receiver:
    """The receiver process, started and stopped around one measurement."""

    def __init__(self, reject_fraction: float = 0.0) -> None:
        with socket_port() as port:
            self.url = f"http://127.0.0.1:{port}"
        self._argv = [
            sys.executable,
            __file__,
            "--serve",
            str(port),
            "--reject",
            str(reject_fraction),
        ]
        self._proc: subprocess.Popen[bytes] | None = None

    def stats(self) -> dict[str, Any]:
        """What the receiver saw so far."""
        data: dict[str, Any] = httpx.get(f"{self.url}/_stats", timeout=10).json()
        return data

    def __enter__(self) -> Receiver:
        self._proc = subprocess.Popen(self._argv)
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                self.stats()
                return self
            time.sleep(0.05)
        raise RuntimeError("the receiver did not start")

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        self._proc.terminate()
        self._proc.wait(timeout=10)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


SOULWATCH_CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5m
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook"}}]
delivery:
  initial_backoff: 10ms
  max_backoff: 1s
"""


@contextlib.asynccontextmanager
async def _soulwatch(url: str, data: Path):  # type: ignore[no-untyped-def]
    config = parse_config(SOULWATCH_CONFIG.format(url=url))
    clock = SystemClock()
    async with httpx.AsyncClient(timeout=10) as client:
        outbox = Outbox(data / "alerting.db", clock=clock, settings=config.delivery)
        outbox.use_notifiers(
            build_notifiers(config, client=client, clock=clock, issue_index=outbox.issues)
        )
        dispatcher = Dispatcher(config, clock=clock, outbox=outbox)
        tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(outbox.run())]
        try:
            yield dispatcher, outbox
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            outbox.close()


async def soulwatch_latency(n: int, gap: float) -> list[float]:
    with Receiver() as rec, tempfile.TemporaryDirectory() as tmp:
        async with _soulwatch(rec.url, Path(tmp)) as (dispatcher, _):
            fired: dict[str, float] = {}
            for i in range(n):
                name = f"L{i}"
                fired[name] = time.time()
                await dispatcher.send([Alert(Labels.of(alertname=name), {}, fired[name])])
                await asyncio.sleep(gap)
            for _ in range(200):
                arrivals = rec.stats()["arrivals"]
                if len(arrivals) >= n:
                    break
                await asyncio.sleep(0.05)
        return [arrivals[k] - fired[k] for k in fired if k in arrivals]


async def soulwatch_throughput(n: int) -> tuple[float, int, int]:
    with Receiver(reject_fraction=0.5) as rec, tempfile.TemporaryDirectory() as tmp:
        async with _soulwatch(rec.url, Path(tmp)) as (dispatcher, outbox):
            t0 = time.time()
            alerts = [Alert(Labels.of(alertname=f"T{i}"), {}, t0) for i in range(n)]
            await dispatcher.send(alerts)
            for _ in range(12000):
                await asyncio.sleep(0.01)
                if not outbox.pending_count():
                    break
            elapsed = time.time() - t0
            stats = rec.stats()
        return len(stats["accepted"]) / elapsed, len(stats["accepted"]), stats["requests"]


AM_CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 5m
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook"}}]
"""


@contextlib.contextmanager
def _alertmanager(url: str) -> Iterator[str]:
    binary = shutil.which("prometheus-alertmanager")
    assert binary
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "am.yml"
        cfg.write_text(AM_CONFIG.format(url=url))
        with socket_port() as port:
            pass
        proc = subprocess.Popen(
            [binary, f"--config.file={cfg}", f"--storage.path={tmp}/data",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                        break
                time.sleep(0.05)
            yield base
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def _am_alert(name: str, t: float) -> dict[str, Any]:
    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
    return {"labels": {"alertname": name}, "startsAt": iso}


def alertmanager_latency(n: int, gap: float) -> list[float]:
    with Receiver() as rec, _alertmanager(rec.url) as am, httpx.Client() as client:
        fired: dict[str, float] = {}
        for i in range(n):
            name = f"L{i}"
            fired[name] = time.time()
            client.post(f"{am}/api/v2/alerts", json=[_am_alert(name, fired[name])])
            time.sleep(gap)
        for _ in range(200):
            arrivals = rec.stats()["arrivals"]
            if len(arrivals) >= n:
                break
            time.sleep(0.05)
        return [arrivals[k] - fired[k] for k in fired if k in arrivals]


def alertmanager_throughput(n: int) -> tuple[float, int, int]:
    with Receiver(reject_fraction=0.5) as rec, _alertmanager(rec.url) as am, httpx.Client() as c:
        t0 = time.time()
        for start in range(0, n, 200):
            c.post(
                f"{am}/api/v2/alerts",
                json=[_am_alert(f"T{i}", t0) for i in range(start, min(n, start + 200))],
            )
        # Alertmanager gives up on a 429 from a webhook: wait until requests stop coming.
        last, seen = time.time(), -1
        while time.time() - last < 2.0 and time.time() - t0 < 120:
            stats = rec.stats()
            if stats["requests"] != seen:
                seen, last = stats["requests"], time.time()
            time.sleep(0.05)
        elapsed = last - t0
        return len(stats["accepted"]) / elapsed, len(stats["accepted"]), stats["requests"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=200, help="alerts for the latency test")
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between alerts")
    parser.add_argument("--burst", type=int, default=1000, help="notifications for throughput")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reject", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.reject)
        return
    have_am = shutil.which("prometheus-alertmanager") is not None
    rows: dict[str, list[tuple[float, float]]] = {"soulwatch": [], "alertmanager": []}
    tput: dict[str, list[tuple[float, int, int]]] = {"soulwatch": [], "alertmanager": []}
    for _ in range(args.repeat):
        lat = asyncio.run(soulwatch_latency(args.alerts, args.gap))
        rows["soulwatch"].append((_pct(lat, 0.5), _pct(lat, 0.99)))
        tput["soulwatch"].append(asyncio.run(soulwatch_throughput(args.burst)))
        if have_am:
            lat = alertmanager_latency(args.alerts, args.gap)
            rows["alertmanager"].append((_pct(lat, 0.5), _pct(lat, 0.99)))
            tput["alertmanager"].append(alertmanager_throughput(args.burst))

    def span(values: list[float], scale: float = 1000.0, fmt: str = "{:.1f}") -> str:
        med, lo, hi = (fmt.format(v * scale) for v in (statistics.median(values), *minmax(values)))
        return f"{med} ({lo}–{hi})"

    def minmax(values: list[float]) -> tuple[float, float]:
        return min(values), max(values)

    print(f"\nLatency firing -> webhook received, {args.alerts} alerts, group_wait 0s, "
          f"median of {args.repeat} runs (min–max)")  # fmt: skip
    print("| peer | p50 ms | p99 ms | p50 ratio |")
    print("|---|---|---|---|")
    base = statistics.median(p50 for p50, _ in rows["soulwatch"])
    for peer, vals in rows.items():
        if not vals:
            continue
        p50s, p99s = [v[0] for v in vals], [v[1] for v in vals]
        ratio = statistics.median(p50s) / base
        print(f"| {peer} | {span(p50s)} | {span(p99s)} | {ratio:.2f}x |")
    print(f"\nThroughput, {args.burst} notifications, receiver answers 429 to half the requests")
    print("| peer | accepted/s | accepted | HTTP requests |")
    print("|---|---|---|---|")
    for peer, vals in tput.items():
        if not vals:
            continue
        print(
            f"| {peer} | {span([v[0] for v in vals], 1.0, '{:.0f}')} | "
            f"{min(v[1] for v in vals)}–{max(v[1] for v in vals)} of {args.burst} | "
            f"{statistics.median(v[2] for v in vals):.0f} |"
        )


if __name__ == "__main__":
    main()
