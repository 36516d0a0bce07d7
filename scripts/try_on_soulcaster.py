#!/usr/bin/env python3
"""Adopt soulwatch on a real Soulcaster checkout, as docs/soulcaster.md says, and check it.

Run by hand, with soulwatch's own environment, on a clone of naga-k/soulcaster::

    .venv/bin/python scripts/try_on_soulcaster.py /path/to/soulcaster [--quick] [--dashboard]

It needs ``uv`` (Soulcaster's installer) and ``redis-server`` on PATH, and the
package index for ``uv sync``. The checkout is copied, never modified. Steps:

1. ``uv sync --extra dev`` in the copy's ``backend/`` and Soulcaster's own
   tests, with no store variable set.
2. soulwatch built as a wheel, put in ``backend/vendor/`` and added with
   ``uv add`` (kept by ``uv sync``, and by the Dockerfile's frozen sync once
   ``vendor/`` is copied), the adoption lines applied (``instrument(app)`` in
   ``main.py``, the heartbeat in ``reddit_poller.py``), and the tests run
   again: the failures must be the same as before.
3. A local redis-server (``REDIS_URL``), the backend started with the Procfile's
   command (bound to 127.0.0.1), and ``soulwatch run`` on the Soulcaster preset,
   its notifiers pointed at a local recording server. Checked: the
   ``backend-health`` probe and the SDK's metrics as soulwatch stores them, the
   heartbeat's ping URL, the documented trigger-poll curl,
   ``RedditPoller.run_forever`` pinging the ``reddit-poller`` check, and a job
   and a Reddit item written by Soulcaster's own ``store`` functions and read
   back by the collector.
4. Unless ``--quick``: redis-server is stopped until ``RedisConnectionLoss`` and
   ``BackendDown`` fire (the preset's own 1 and 2 minute ``for:``), then restarted
   until both resolve; the durations and notifications are printed. Meanwhile
   an API route's 500 must keep its ``X-Request-ID``, in the answer and the log.
5. With ``--dashboard`` (needs ``npm``): ``npm ci`` in ``dashboard/``, the doc's
   dashboard lines (the health route and the browser agent, read from
   docs/soulcaster.md itself), ``tsc --noEmit`` before and after (no new error),
   and ``next dev``: ``/api/health`` answers 503 without a database, ``/`` carries
   the agent's script.

Nothing leaves 127.0.0.1 except the package installs. Every process started
here is stopped before it exits; the exit status is 0 only if every check passed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
TOKEN = "try-on-soulcaster-" + uuid.uuid4().hex[:16]

# The adoption lines, exactly as docs/soulcaster.md prints them.
MAIN_ANCHOR = '    version="0.1.0",\n)\n'
MAIN_LINES = """
from soulwatch.instrument import instrument

sw = instrument(app, service="backend")
sw.add_check("store", ping)  # store.ping: the store main.py already selected
"""
POLLER_IMPORT = "import contextlib\n"
POLLER_ANCHOR = "    _store_get_reddit_subreddits = None\n"
POLLER_LINES = """
from soulwatch.instrument import Heartbeat

heartbeat = Heartbeat(url) if (url := os.getenv("POLLER_HEARTBEAT_URL")) else None
"""
POLLER_LOOP_OLD = """            self.poll_once(active_subreddits)
            self.sleep(self.poll_interval)
"""
POLLER_LOOP_NEW = """            with heartbeat.run() if heartbeat else contextlib.nullcontext():
                self.poll_once(active_subreddits)
            self.sleep(self.poll_interval)
"""
ROUTE = ("--labels", "alertname=BackendDown,priority=P1")
SILENCE = ("alertname=HighLatency", "--duration", "2h", "-m", "deploy")
STORE_VARIABLES = (
    "REDIS_URL",
    "UPSTASH_REDIS_URL",
    "UPSTASH_REDIS_REST_URL",
    "UPSTASH_REDIS_REST_TOKEN",
)


class Report:
    """Collects check results and figures; prints each as it comes."""

    def __init__(self) -> None:
        self.failures: list[str] = []
        self.started = time.monotonic()

    def check(self, ok: bool, what: str) -> bool:
        """Record one check."""
        print(f"  [{'ok' if ok else 'FAIL'}] {what}", flush=True)
        if not ok:
            self.failures.append(what)
        return ok

    def step(self, title: str) -> None:
        """Print a step header with the time elapsed."""
        print(f"\n== {title} (t+{time.monotonic() - self.started:.0f}s)", flush=True)


class Recorder(ThreadingHTTPServer):
    """Stands in for Slack, PagerDuty, GitHub, E2B and Upstash Vector; records every request."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RecordingHandler)
        self.requests: list[tuple[float, str, str, bytes]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's base URL."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def posts_to(self, prefix: str, since: float = 0.0) -> list[tuple[float, dict[str, Any]]]:
        """(arrival time, JSON body) of the requests POSTed under ``prefix`` since ``since``."""
        with self.lock:
            found = [
                (at, body)
                for at, method, path, body in self.requests
                if method == "POST" and path.startswith(prefix) and at >= since
            ]
        return [(at, json.loads(body)) for at, body in found if body.startswith(b"{")]


class _RecordingHandler(BaseHTTPRequestHandler):
    server: Recorder

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.requests.append((time.monotonic(), self.command, self.path, body))
        reply = (
            b"[]" if self.command == "GET" else b'{"ok": true, "number": 1, "status": "success"}'
        )
        self.send_response(202 if "/pagerduty" in self.path else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PATCH = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the report prints what matters."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http(
    url: str, *, method: str = "GET", token: str | None = None, timeout: float = 5.0
) -> tuple[int, dict[str, str], bytes]:
    """One request; returns status, headers and body (HTTP errors included)."""
    request = urllib.request.Request(url, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def wait_for(what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
    """Call ``probe`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError):
            value = probe()
            if value:
                return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, output captured."""
    return subprocess.run(
        cmd, cwd=cwd, env=env, timeout=timeout, capture_output=True, text=True, check=False
    )


class Processes:
    """Every long-running process started here, stopped (group and all) on exit."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(
        self, cmd: list[str], cwd: Path, env: dict[str, str], log: Path
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own process group, output to ``log``."""
        with log.open("ab") as out:
            proc = subprocess.Popen(
                cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.started.append(proc)
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes]) -> None:
        """SIGTERM the process group, SIGKILL after 10 s."""
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every process still running, the last started first."""
        for proc in reversed(self.started):
            self.stop(proc)


def pytest_summary(output: str) -> tuple[dict[str, int], set[str]]:
    """The counts of pytest's last line and the ids of the failed tests."""
    counts = {
        kind: int(n)
        for n, kind in re.findall(
            r"(\d+) (passed|failed|skipped|errors?)", output.splitlines()[-1] if output else ""
        )
    }
    failed = set(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M))
    return counts, failed


def soulcaster_tests(backend: Path, env: dict[str, str], label: str, report: Report) -> set[str]:
    """Run Soulcaster's suite with ``uv run pytest``; print and return its failures."""
    began = time.monotonic()
    result = run(
        ["uv", "run", "pytest", "-q", "-p", "no:cacheprovider"], backend, env, timeout=1200
    )
    counts, failed = pytest_summary(result.stdout.strip())
    print(f"  {label}: {counts} in {time.monotonic() - began:.0f}s", flush=True)
    for test in sorted(failed):
        print(f"    failed: {test}")
    report.check(sum(counts.values()) > 0, f"Soulcaster's suite ran ({label})")
    return failed


def tail(result: subprocess.CompletedProcess[str], *, always: bool = False) -> str:
    """The end of a command's output, shown when it failed (or always)."""
    if result.returncode == 0 and not always:
        return ""
    return (result.stdout.strip() + " " + result.stderr.strip()).strip()[-300:]


def patch(path: Path, old: str, new: str) -> None:
    """Replace the one occurrence of ``old``; a clear error if the code moved."""
    text = path.read_text()
    if text.count(old) != 1:
        raise SystemExit(
            f"{path}: the adoption anchor {old.strip()!r} is not there exactly once;"
            " docs/soulcaster.md needs updating"
        )
    path.write_text(text.replace(old, new))


def adopt(backend: Path) -> None:
    """Apply docs/soulcaster.md's lines to main.py and reddit_poller.py."""
    patch(backend / "main.py", MAIN_ANCHOR, MAIN_ANCHOR + MAIN_LINES)
    poller = backend / "reddit_poller.py"
    patch(poller, "import os\n", POLLER_IMPORT + "import os\n")
    patch(poller, POLLER_ANCHOR, POLLER_ANCHOR + POLLER_LINES)
    patch(poller, POLLER_LOOP_OLD, POLLER_LOOP_NEW)


def monitor_config(path: Path, listen: int, backend: int, recorder: str) -> None:
    """The preset's config, addresses and outside services pointed at this machine."""
    config = yaml.safe_load(path.read_text())
    config["listen"] = f"127.0.0.1:{listen}"
    for job in config["scrape_configs"]:
        targets = job["static_configs"][0]["targets"]
        job["static_configs"][0]["targets"] = [
            t.replace("127.0.0.1:9797", f"127.0.0.1:{listen}").replace(
                "127.0.0.1:8000", f"127.0.0.1:{backend}"
            )
            for t in targets
        ]
    for probe in config["probes"]:
        probe["targets"] = [
            t.replace("127.0.0.1:8000", f"127.0.0.1:{backend}") for t in probe.get("targets", [])
        ]
    config["collectors"]["e2b"]["api_url"] = recorder
    config["alerting"].setdefault("global", {})["pagerduty_url"] = f"{recorder}/pagerduty"
    for receiver in config["alerting"]["receivers"]:
        for github in receiver.get("github_configs", []):
            github["api_url"] = f"{recorder}/github"
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """An instant query against the monitor's Prometheus API."""
    status, _, body = http(f"{base}/api/v1/query?query={urllib.parse.quote(promql)}")
    return list(json.loads(body)["data"]["result"]) if status == 200 else []


def alert_state(base: str, name: str) -> str | None:
    """The state of alert ``name`` on the monitor (pending/firing), or None."""
    status, _, body = http(f"{base}/api/v1/alerts")
    if status != 200:
        return None
    states = [
        a["state"]
        for a in json.loads(body)["data"]["alerts"]
        if a["labels"].get("alertname") == name
    ]
    return "firing" if "firing" in states else (states[0] if states else None)


def equal_to_one(base: str, promql: str) -> list[dict[str, Any]]:
    """The series of ``promql`` whose value is 1."""
    return [series for series in query(base, promql) if series["value"][1] == "1"]


def has_state(base: str, name: str, state: str | None) -> bool:
    """Whether alert ``name`` is in ``state`` (None: neither pending nor firing)."""
    return alert_state(base, name) == state


def heartbeat(base: str, token: str | None = None) -> dict[str, Any]:
    """The reddit-poller check as the API shows it."""
    _, _, body = http(f"{base}/api/v1/heartbeats/reddit-poller", token=token)
    return dict(json.loads(body))


@contextlib.contextmanager
def working_copy(checkout: Path, workdir: str | None) -> Iterator[Path]:
    """A copy of the checkout (no .git, .venv or node_modules), removed afterwards unless named."""
    root = Path(workdir or tempfile.mkdtemp(prefix="try-on-soulcaster-"))
    root.mkdir(parents=True, exist_ok=True)
    copy = root / "soulcaster"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(
        checkout,
        copy,
        ignore=shutil.ignore_patterns(".git", ".venv", "node_modules", "__pycache__", ".next"),
    )
    try:
        yield root
    finally:
        if workdir is None:
            shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    """Walk docs/soulcaster.md on the checkout; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=Path, help="a clone of naga-k/soulcaster")
    parser.add_argument(
        "--workdir",
        help="keep the copy, environments and logs here (default: a temporary directory, removed)",
    )
    parser.add_argument(
        "--dashboard", action="store_true", help="also check the dashboard lines (npm, next dev)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="skip the Redis outage (saves about 5 minutes)"
    )
    args = parser.parse_args()
    backend_src = args.checkout / "backend" / "main.py"
    if not backend_src.is_file():
        parser.error(f"{args.checkout} has no backend/main.py: not a Soulcaster checkout")
    for binary in ("uv", "redis-server"):
        if shutil.which(binary) is None:
            parser.error(f"{binary} is not on PATH")
    commit = (
        run(["git", "rev-parse", "--short", "HEAD"], args.checkout).stdout.strip()
        or "(not a git checkout)"
    )
    report = Report()
    processes = Processes()
    recorder = Recorder()
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        with working_copy(args.checkout, args.workdir) as root:
            print(f"Soulcaster {commit} from {args.checkout}, working in {root}")
            walk(root, report, processes, recorder, quick=args.quick)
            if args.dashboard:
                dashboard(root / "soulcaster" / "dashboard", root / "logs", report, processes)
    finally:
        processes.stop_all()
        recorder.shutdown()
        recorder.server_close()
    print(
        f"\n{len(report.failures)} check(s) failed" + "".join(f"\n  - {f}" for f in report.failures)
        if report.failures
        else "\nevery check passed"
    )
    print(f"total {time.monotonic() - report.started:.0f}s")
    return 1 if report.failures else 0


def walk(
    root: Path, report: Report, processes: Processes, recorder: Recorder, *, quick: bool
) -> None:
    """The doc's steps, in order."""
    backend = root / "soulcaster" / "backend"
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    base_env = {
        k: v for k, v in os.environ.items() if k not in STORE_VARIABLES and k != "VIRTUAL_ENV"
    }

    report.step("1. Soulcaster as cloned: uv sync --extra dev, its own tests")
    began = time.monotonic()
    synced = run(["uv", "sync", "--extra", "dev"], backend, base_env)
    report.check(
        synced.returncode == 0,
        f"uv sync --extra dev ({time.monotonic() - began:.0f}s) {tail(synced)}",
    )
    before = soulcaster_tests(backend, base_env, "as cloned", report)

    report.step(
        "2. soulwatch's wheel in backend/vendor, uv add; the adoption lines; the tests again"
    )
    dist = root / "dist"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)], root
    )
    wheels = sorted(dist.glob("soulwatch-*.whl"))
    if not report.check(built.returncode == 0 and bool(wheels), f"built a wheel {tail(built)}"):
        return
    vendored = f"vendor/{wheels[0].name}"
    (backend / "vendor").mkdir(exist_ok=True)
    shutil.copy(wheels[0], backend / vendored)
    added = run(["uv", "add", vendored], backend, base_env)
    report.check(added.returncode == 0, f"uv add {vendored} {tail(added)}")
    run(["uv", "sync", "--extra", "dev"], backend, base_env)
    kept = run(["uv", "run", "python", "-c", "import soulwatch.instrument"], backend, base_env)
    report.check(kept.returncode == 0, f"soulwatch still installed after uv sync {tail(kept)}")
    # backend/Dockerfile's builder stage: pyproject.toml, uv.lock (and vendor/), then
    # `uv sync --frozen --no-dev` into /opt/venv.
    builder = root / "builder"
    builder.mkdir(exist_ok=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(backend / name, builder / name)
    shutil.copytree(backend / "vendor", builder / "vendor", dirs_exist_ok=True)
    frozen_env = {**base_env, "UV_PROJECT_ENVIRONMENT": str(builder / "venv")}
    frozen = run(["uv", "sync", "--frozen", "--no-dev"], builder, frozen_env)
    importable = run(
        [str(builder / "venv" / "bin" / "python"), "-c", "import soulwatch.instrument"], builder
    )
    report.check(
        frozen.returncode == 0 and importable.returncode == 0,
        "the Dockerfile's uv sync --frozen --no-dev, vendor/ copied"
        f" {tail(frozen)}{tail(importable)}",
    )
    adopt(backend)
    after = soulcaster_tests(backend, base_env, "adopted", report)
    report.check(
        after == before,
        "the adoption lines change no test's outcome"
        f" (new failures: {sorted(after - before) or 'none'})",
    )

    report.step("3. redis-server, the backend, soulwatch on the preset")
    redis_port, backend_port, listen = free_port(), free_port(), free_port()
    redis_cmd = [
        "redis-server",
        "--port",
        str(redis_port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
    ]
    redis = processes.start(redis_cmd, root, base_env, logs / "redis.log")
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    backend_env = {**base_env, "REDIS_URL": redis_url, "PORT": str(backend_port)}
    # The Procfile's web command, bound to 127.0.0.1 rather than 0.0.0.0.
    processes.start(
        ["uv", "run", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(backend_port)],
        backend,
        backend_env,
        logs / "backend.log",
    )
    backend_url = f"http://127.0.0.1:{backend_port}"
    status, headers, body = wait_for(
        "the backend's /health", lambda: (r := http(f"{backend_url}/health"))[0] == 200 and r, 90
    )
    report.check(
        json.loads(body).get("service") == "soulcaster-backend",
        f"/health is Soulcaster's own: {body.decode()[:120]}",
    )
    report.check("x-request-id" in {k.lower() for k in headers}, "X-Request-ID on /health")
    status, _, body = http(f"{backend_url}/ready")
    report.check(
        status == 200 and b"store" in body,
        f"/ready (the SDK's, with the store check): {status} {body.decode()[:120]}",
    )
    for path in ("/", "/nope"):  # Soulcaster's root route, and an unknown path
        http(f"{backend_url}{path}")
    _, _, metrics = http(f"{backend_url}/metrics")
    families = sorted(set(re.findall(r"^# TYPE (http_\w+)", metrics.decode(), re.M)))
    report.check("http_requests_total" in families, f"/metrics serves {', '.join(families)}")

    monitor = root / "monitor"
    monitor.mkdir(exist_ok=True)
    initialised = run(
        [
            sys.executable,
            "-m",
            "soulwatch",
            "init",
            "--preset",
            "soulcaster",
            "-o",
            "soulwatch.yaml",
        ],
        monitor,
    )
    report.check(
        initialised.returncode == 0,
        f"soulwatch init --preset soulcaster -o soulwatch.yaml {initialised.stderr.strip()[-300:]}",
    )
    monitor_config(monitor / "soulwatch.yaml", listen, backend_port, recorder.url)
    monitor_env = {
        **base_env,
        "SOULCASTER_REDIS_URL": redis_url,
        "UPSTASH_VECTOR_REST_URL": f"{recorder.url}/vector",
        "UPSTASH_VECTOR_REST_TOKEN": "vector-token",
        "E2B_API_KEY": "e2b-key",
        "SLACK_WEBHOOK_URL": f"{recorder.url}/slack",
        "PAGERDUTY_ROUTING_KEY": "pagerduty-key",
        "GITHUB_TOKEN": "github-token",
        "SOULWATCH_ADMIN_TOKEN": TOKEN,
    }
    checked = run(
        [sys.executable, "-m", "soulwatch", "check", "config", "soulwatch.yaml"],
        monitor,
        monitor_env,
    )
    report.check(
        checked.returncode == 0,
        f"soulwatch check config {checked.stdout.strip()[-200:]}{checked.stderr.strip()[-300:]}",
    )
    rules_ok = run(
        [
            sys.executable,
            "-m",
            "soulwatch",
            "test",
            "rules",
            *sorted(str(p) for p in (monitor / "rules" / "tests").glob("*.yml")),
        ],
        monitor,
        monitor_env,
    )
    report.check(
        rules_ok.returncode == 0,
        f"soulwatch test rules rules/tests/*.yml: {rules_ok.stdout.count('SUCCESS')} files"
        f" passed {tail(rules_ok)}",
    )
    scenarios = sorted(str(p) for p in (monitor / "scenarios").glob("*.scenario.yml"))
    played = run(
        [sys.executable, "-m", "soulwatch", "test", "scenario", *scenarios], monitor, monitor_env
    )
    report.check(
        played.returncode == 0,
        f"soulwatch test scenario scenarios/*.scenario.yml: {tail(played, always=True)[-40:]}",
    )
    routed = run(
        [sys.executable, "-m", "soulwatch", "routes", "test", "-c", "soulwatch.yaml", *ROUTE],
        monitor,
        monitor_env,
    )
    report.check(
        routed.returncode == 0 and routed.stdout.strip() == "page,chat",
        f"soulwatch routes test ... BackendDown,priority=P1: {routed.stdout.strip()}{tail(routed)}",
    )
    processes.start(
        [sys.executable, "-m", "soulwatch", "run", "-c", "soulwatch.yaml", "--log-format", "json"],
        monitor,
        monitor_env,
        logs / "soulwatch.log",
    )
    sw = f"http://127.0.0.1:{listen}"
    wait_for("soulwatch's API", lambda: http(f"{sw}/api/v1/status/buildinfo")[0] == 200, 60)
    probe = wait_for(
        "probe_success of backend-health",
        lambda: query(sw, 'probe_success{job="backend-health"}'),
        60,
    )
    report.check(
        probe[0]["value"][1] == "1",
        f'probe_success{{job="backend-health"}} = {probe[0]["value"][1]}'
        f" (target {probe[0]['metric'].get('instance')})",
    )
    scraped = wait_for(
        "the backend's request metrics",
        lambda: query(sw, 'sum by (route, status) (http_requests_total{job="backend"})'),
        60,
    )
    report.check(
        bool(scraped),
        'http_requests_total{job="backend"} stored: '
        + ", ".join(
            f"{s['metric'].get('route')} {s['metric'].get('status')}={s['value'][1]}"
            for s in scraped
        ),
    )

    silenced = run(
        [sys.executable, "-m", "soulwatch", "silence", "--url", sw, "add", *SILENCE],
        monitor,
        {**base_env, "SOULWATCH_TOKEN": TOKEN},
    )
    report.check(
        silenced.returncode == 0, f"soulwatch silence add (the doc's line) {tail(silenced)}"
    )

    report.step("3b. the reddit-poller heartbeat")
    anonymous = heartbeat(sw)
    report.check(
        "ping_url" not in anonymous and anonymous.get("status") == "new",
        f"without a token: status {anonymous.get('status')}, no ping_url",
    )
    ping_url = heartbeat(sw, TOKEN).get("ping_url", "")
    report.check(
        ping_url.startswith(f"{sw}/ping/"),
        f"with the admin token, an absolute ping_url: {ping_url.rsplit('/', 1)[0]}/<uuid>",
    )
    project = str(uuid.uuid4())
    curl = (
        'curl -fsS -X POST "$BACKEND_URL/admin/trigger-poll?project_id=$PROJECT_ID"'
        ' && curl -fsS "$POLLER_HEARTBEAT_URL"'
    )
    polled = run(
        ["bash", "-c", curl],
        root,
        {
            **base_env,
            "BACKEND_URL": backend_url,
            "PROJECT_ID": project,
            "POLLER_HEARTBEAT_URL": ping_url,
        },
        timeout=60,
    )
    report.check(
        polled.returncode == 0,
        f"the doc's trigger-poll curl: {polled.stdout.strip()[:160]} {polled.stderr.strip()[:160]}",
    )
    after_curl = heartbeat(sw)
    report.check(
        after_curl.get("status") == "up",
        f"after the curl the check is {after_curl.get('status')}"
        f" (last ping {after_curl.get('last_ping')})",
    )
    # RedditPoller.run_forever with its heartbeat; no subreddit, so nothing leaves this machine.
    loop = "import reddit_poller; reddit_poller.RedditPoller(poll_interval=2).run_forever([])"
    poller_env = {**base_env, "REDIS_URL": redis_url, "POLLER_HEARTBEAT_URL": ping_url}
    earlier = _pings(sw)
    poller = processes.start(
        ["uv", "run", "python", "-c", loop], backend, poller_env, logs / "poller.log"
    )
    kinds = wait_for(
        "two polls' pings from run_forever",
        lambda: len(k := _pings(sw)[len(earlier) :]) >= 4 and k,
        60,
    )
    processes.stop(poller)
    report.check(
        {"start", "success"} <= set(kinds), f"RedditPoller.run_forever pinged: {', '.join(kinds)}"
    )
    report.check(heartbeat(sw).get("status") == "up", "the reddit-poller check is up")

    report.step(
        "3c. Soulcaster's own store writes a job and a Reddit item; the collector reads them"
    )
    writer = "\n".join(
        [
            "import sys, uuid, datetime as dt",
            "import store",
            "from models import AgentJob, FeedbackItem",
            "now = dt.datetime.now(dt.timezone.utc)",
            "pid = sys.argv[1]",
            "store.add_job(AgentJob(id=uuid.uuid4(), project_id=pid, cluster_id='cluster-1',"
            " status='pending', created_at=now, updated_at=now))",
            "store.set_reddit_subreddits_for_project(['PlayCanvas'], pid)",
            "store.add_feedback_item(FeedbackItem(id=uuid.uuid4(), project_id=pid,"
            " source='reddit', external_id='t3_try', title='t', body='b', created_at=now))",
        ]
    )
    written = run(
        ["uv", "run", "python", "-c", writer, project],
        backend,
        {**base_env, "REDIS_URL": redis_url},
    )
    report.check(written.returncode == 0, f"store.add_job, add_feedback_item {tail(written)}")
    for promql in (
        'soulcaster_agent_jobs{status="pending"}',
        f'soulcaster_reddit_items{{project_id="{project}"}}',
        f'soulcaster_reddit_subreddits_configured{{project_id="{project}"}}',
    ):
        found = wait_for(promql, functools.partial(equal_to_one, sw, promql), 60)
        report.check(bool(found), f"{promql} = 1")

    if quick:
        return
    report.step("4. Redis outage: redis-server stopped")
    stopped = time.monotonic()
    processes.stop(redis)
    status, _, body = wait_for(
        "/health to fail", lambda: (r := http(f"{backend_url}/health"))[0] != 200 and r, 30
    )
    report.check(
        status == 503, f"the backend's /health with Redis down: {status} {body.decode()[:100]}"
    )
    status, headers, _ = http(f"{backend_url}/stats?project_id={project}")
    request_id = {k.lower(): v for k, v in headers.items()}.get("x-request-id", "")
    report.check(
        status == 500 and bool(request_id),
        f"GET /stats with Redis down: {status}, X-Request-ID {request_id or 'missing'}",
    )
    logged = [
        line
        for line in (logs / "backend.log").read_text(errors="replace").splitlines()
        if request_id and request_id in line and "Unhandled exception" in line
    ]
    report.check(
        bool(logged), "global_exception_handler's log line for that 500 carries the request id"
    )
    fired: dict[str, float] = {}
    for name in ("RedisConnectionLoss", "BackendDown"):
        wait_for(f"{name} firing", functools.partial(has_state, sw, name, "firing"), 300, every=5)
        fired[name] = time.monotonic() - stopped
        report.check(True, f"{name} fired {fired[name]:.0f}s after redis-server stopped")
    report.step("4b. redis-server restarted")
    processes.start(redis_cmd, root, base_env, logs / "redis.log")
    restarted = time.monotonic()
    print(f"  redis-server restarted at t+{restarted - stopped:.0f}s")
    for name in ("RedisConnectionLoss", "BackendDown"):
        wait_for(f"{name} resolved", functools.partial(has_state, sw, name, None), 180, every=5)
        report.check(
            True,
            f"{name} resolved {time.monotonic() - restarted:.0f}s after redis-server restarted",
        )

    # Resolved notifications leave with the group's next flush (group_interval, 5m in the preset).
    def resolves() -> list[tuple[float, dict[str, Any]]]:
        return [
            (at, event)
            for at, event in recorder.posts_to("/pagerduty", since=stopped)
            if event.get("event_action") == "resolve"
        ]

    with contextlib.suppress(TimeoutError):
        wait_for("PagerDuty resolve events", lambda: len(resolves()) >= 2, 360, every=5)
    pagerduty = recorder.posts_to("/pagerduty", since=stopped)
    summaries = {
        e.get("dedup_key"): e.get("payload", {}).get("summary", "")
        for _, e in pagerduty
        if e.get("event_action") == "trigger"
    }
    for at, event in pagerduty:
        summary = summaries.get(event.get("dedup_key")) or str(event.get("dedup_key"))
        print(f"  PagerDuty {event.get('event_action')} at t+{at - stopped:.0f}s: {summary[:60]}")
    triggers = sum(event.get("event_action") == "trigger" for _, event in pagerduty)
    report.check(triggers >= 2 and len(resolves()) >= 2, "PagerDuty triggered and resolved")
    slack = recorder.posts_to("/slack", since=stopped)
    report.check(len(slack) >= 4, f"Slack messages: {len(slack)} (firing and resolved)")
    print(
        "  (t is counted from redis-server's stop; the dashboard is not started here, so the"
        " preset's dashboard probe pages too)"
    )


DOC = REPO / "docs" / "soulcaster.md"


def doc_block(after: str) -> str:
    """The first fenced code block of docs/soulcaster.md after the text ``after``."""
    text = DOC.read_text()
    start = text.index(after)
    opening = text.index("```", start)
    body = text.index("\n", opening) + 1
    lines = text[body : text.index("```", body)].splitlines(keepends=True)
    indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
    return "".join(line[indent:] if line.strip() else "\n" for line in lines)


def tsc_errors(dashboard_dir: Path) -> set[str]:
    """The dashboard's TypeScript errors (its own ``tsc --noEmit``)."""
    result = run(["npx", "tsc", "--noEmit"], dashboard_dir, timeout=900)
    return set(re.findall(r"^(\S+\(\d+,\d+\): error TS\d+)", result.stdout, re.M))


def dashboard(dashboard_dir: Path, logs: Path, report: Report, processes: Processes) -> None:
    """The doc's dashboard lines on the real dashboard: they compile and answer."""
    report.step("5. the dashboard: npm ci, the doc's lines, tsc, next dev")
    began = time.monotonic()
    installed = run(["npm", "ci", "--no-audit", "--no-fund"], dashboard_dir, timeout=1500)
    if not report.check(installed.returncode == 0, f"npm ci ({time.monotonic() - began:.0f}s)"):
        return
    before = tsc_errors(dashboard_dir)
    print(f"  tsc --noEmit as cloned: {sorted(before) or 'no error'}")
    route = dashboard_dir / "app" / "api" / "health" / "route.ts"
    route.parent.mkdir(parents=True, exist_ok=True)
    route.write_text(doc_block("add `dashboard/app/api/health/route.ts`"))
    (dashboard_dir / "types" / "soulwatch.d.ts").write_text(
        doc_block("a new `dashboard/types/soulwatch.d.ts`")
    )
    patch(
        dashboard_dir / "proxy.ts",
        "    '/favicon.ico',\n",
        "    '/favicon.ico',\n    '/api/health',\n",
    )
    layout = dashboard_dir / "app" / "layout.tsx"
    patch(
        layout,
        "import type { Metadata } from 'next';\n",
        "import type { Metadata } from 'next';\nimport Script from \"next/script\";\n",
    )
    body = re.search(r"^( *)<body [^\n]*>\n", layout.read_text(), re.M)
    if body is None:
        raise SystemExit(f"{layout}: no <body> line")
    script = doc_block("first inside `<body>` of `RootLayout`").strip()
    patch(layout, body.group(0), f"{body.group(0)}{body.group(1)}  {script}\n")
    capture = "    Sentry.captureException(error);\n"
    patch(
        dashboard_dir / "app" / "global-error.tsx",
        capture,
        capture + "    window.soulwatch?.reportError(error);\n",
    )
    otel = run(
        ["npm", "install", "--no-audit", "--no-fund", "@vercel/otel", "@opentelemetry/api"],
        dashboard_dir,
    )
    report.check(otel.returncode == 0, f"npm install @vercel/otel @opentelemetry/api {tail(otel)}")
    instrumentation = dashboard_dir / "instrumentation.ts"
    patch(
        instrumentation,
        'import * as Sentry from "@sentry/nextjs";\n',
        'import * as Sentry from "@sentry/nextjs";\nimport { registerOTel } from "@vercel/otel";\n',
    )
    patch(
        instrumentation,
        "export async function register() {\n",
        'export async function register() {\n  registerOTel({ serviceName: "dashboard" });\n',
    )
    after = tsc_errors(dashboard_dir)
    report.check(
        after <= before,
        "tsc --noEmit with the doc's lines: no new error"
        f" (new: {sorted(after - before) or 'none'})",
    )

    port = free_port()
    env = {
        **os.environ,
        "NEXT_TELEMETRY_DISABLED": "1",
        "NEXTAUTH_SECRET": TOKEN,
        "NEXTAUTH_URL": f"http://127.0.0.1:{port}",
    }
    env.pop("DATABASE_URL", None)
    server = processes.start(
        ["npx", "next", "dev", "-H", "127.0.0.1", "-p", str(port)],
        dashboard_dir,
        env,
        logs / "dashboard.log",
    )
    base = f"http://127.0.0.1:{port}"
    # The first request to each route compiles it: minutes on a small machine.
    status, _, answer = wait_for(
        "next dev's /api/health",
        lambda: (r := http(f"{base}/api/health", timeout=300)) and r,
        300,
        every=3,
    )
    report.check(
        status == 503 and b"unhealthy" in answer,
        f"/api/health without a database: {status} {answer.decode()[:80]}",
    )
    status, _, page = http(f"{base}/", timeout=300)
    report.check(
        status == 200 and b"rum/v1/agent.js" in page and b"dash-7f3a9c21" in page,
        f"/ answers {status} with the agent's script and site key",
    )
    processes.stop(server)


def _pings(base: str) -> list[str]:
    """The kinds of the pings the reddit-poller check received, oldest first."""
    _, _, body = http(f"{base}/api/v1/heartbeats/reddit-poller/pings", token=TOKEN)
    pings = sorted(json.loads(body)["pings"], key=lambda p: str(p["at"]))
    return [str(p["kind"]) for p in pings]


if __name__ == "__main__":
    sys.exit(main())
