"""The RUM intake's throughput on one core, and the browser agent's size.

Starts ``soulwatch run`` with one RUM site as a subprocess pinned to one CPU
(``taskset``), then posts beacons as browsers do (``text/plain`` batches of
``--batch`` events with an allowed ``Origin``, one session per simulated tab)
from ``--clients`` threads for ``--seconds``. It prints the events accepted per
second of wall time and per second of the server's CPU time (read from
``/proc/<pid>/stat``): the second is what one core absorbs, whatever the load
generator manages. The agent's size is printed beside web-vitals' own.

No peer runs here: the RUM products it stands in for (Datadog RUM, Sentry,
Vercel Analytics) are hosted services. The goal from the issue is 5,000
events per second on one core.

Usage: ``.venv/bin/python benchmarks/rum.py [--seconds 20] [--clients 8] [--batch 20]``
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from soulwatch.rum.agent import tag_script  # noqa: E402

KEY = "bench-site-key-1"
ORIGIN = "http://127.0.0.1:3000"
GOAL = 5000.0


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _batch(session: str, size: int, n: int) -> str:
    events: list[dict[str, object]] = []
    for i in range(size):
        kind = i % 4
        if kind == 0:
            events.append({"type": "pageview", "page": f"/clusters/{n % 500}"})
        elif kind == 1:
            events.append({"type": "vital", "name": "LCP", "value": 900 + i * 37, "page": "/"})
        elif kind == 2:
            events.append(
                {
                    "type": "api",
                    "route": "/api/clusters",
                    "status": 200,
                    "duration": 40,
                    "page": "/",
                }
            )
        else:
            events.append({"type": "vital", "name": "CLS", "value": 0.02, "page": "/"})
    return json.dumps({"site": KEY, "session": session, "events": events})


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()

    listen = _port()
    base = f"http://127.0.0.1:{listen}"
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "soulwatch.yaml"
        config.write_text(
            f"listen: 127.0.0.1:{listen}\ndata_dir: data\nrum:\n"
            f"  session_events_per_minute: 100000000\n  address_events_per_minute: 100000000\n"
            f"  sites:\n    - name: bench\n      key: {KEY}\n      origins: ['{ORIGIN}']\n"
            f"      routes: ['/', '/clusters/[id]', '/api/clusters']\n"
        )
        argv = [sys.executable, "-m", "soulwatch", "run", "-c", str(config)]
        if shutil.which("taskset"):
            argv = ["taskset", "-c", "0", *argv]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        server = subprocess.Popen(
            argv, cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base}/-/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            accepted = [0] * args.clients
            refused = [0] * args.clients
            stop = time.monotonic() + args.seconds

            def client(i: int) -> None:
                headers = {"Origin": ORIGIN, "Content-Type": "text/plain;charset=UTF-8"}
                with httpx.Client(base_url=base, timeout=10) as http:
                    n = 0
                    while time.monotonic() < stop:
                        body = _batch(f"tab-{i:04d}-{n % 50:04d}", args.batch, n)
                        reply = http.post("/rum/v1/events", content=body, headers=headers)
                        if reply.status_code == 204:
                            accepted[i] += args.batch
                        else:
                            refused[i] += 1
                        n += 1

            cpu0 = _cpu_seconds(server.pid)
            wall0 = time.monotonic()
            threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=args.seconds + 30)
            wall = time.monotonic() - wall0
            cpu = _cpu_seconds(server.pid) - cpu0
        finally:
            server.terminate()
            server.wait(timeout=15)

    vitals = (REPO / "src/soulwatch/rum/static/vendor/web-vitals.iife.js").read_bytes()

    events = sum(accepted)
    per_cpu = events / cpu if cpu else 0.0
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    print(f"{args.clients} clients, batches of {args.batch} events, {args.seconds:g} s")
    print()
    print("| measure | value | goal | ratio |")
    print("|---|---|---|---|")
    print(f"| events accepted | {events:,} (refused batches: {sum(refused)}) | | |")
    print(f"| events/s, wall time | {events / wall:,.0f} | | |")
    ratio = per_cpu / GOAL
    print(f"| events/s per CPU-second of soulwatch | {per_cpu:,.0f} | 5,000 | {ratio:.1f}x |")
    size = len(tag_script().gzipped)
    print(f"| agent.js gzipped | {size:,} B | 5,120 B | {size / 5120:.2f}x |")
    print(f"| of which web-vitals 5.3.0 gzipped | {len(gzip.compress(vitals, 9)):,} B | | |")


if __name__ == "__main__":
    main()
