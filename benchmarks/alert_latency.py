"""Fault to page: soulwatch beside Prometheus + Alertmanager, same backend, same rule file.

One run measures, for the same fault on the same demo backend, the time from
the fault to the page arriving at a local webhook receiver, for:

* **soulwatch**: ``soulwatch run -c FILE`` as a subprocess, with routing in the
  preset's style (root route ``group_wait: 30s``; the ``priority="P1"`` route
  to the ``page`` receiver with ``group_wait: 0s``);
* **Prometheus + Alertmanager (defaults)**: Debian's ``prometheus`` sending to an
  ``prometheus-alertmanager`` whose routes leave ``group_wait`` at its default (30s);
* **Prometheus + Alertmanager (group_wait 0)**: the same Prometheus also sends
  to a second Alertmanager, identical but with ``group_wait: 0s`` on the P1 route.

Both monitors scrape the backend's ``/metrics`` every 5 s, evaluate every 5 s
and load the one rule file ``alert_latency_rules.yml`` unchanged
(``up{job="backend"} == 0`` for 15s). Each system has its own receiver.

Each repetition starts everything afresh (the backend from
``alert_latency_backend.py``, soulwatch, Prometheus, both Alertmanagers), waits
until both monitors have scraped the backend and nothing fires, waits a random
fraction of an interval (so the fault falls at a random phase of every
schedule), kills the backend (SIGKILL: the fault, timestamped), and records
when each receiver gets the firing notification. Each alert's ``activeAt``
(from the monitor's ``/api/v1/alerts``) tells when ``for`` expired. The
backend is then started again, and soulwatch's resolved notification and
Prometheus's alert going inactive are awaited before everything is stopped.

Usage: ``.venv/bin/python benchmarks/alert_latency.py [--reps 5] [--seed 1] [--src DIR]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

import httpx
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RULES = HERE / "alert_latency_rules.yml"
BACKEND = HERE / "alert_latency_backend.py"
ALERTNAME = "BackendDown"

SCRAPE_S = 5.0
EVAL_S = 5.0
#: Alertmanager's default ``group_wait``.
AM_DEFAULT_GROUP_WAIT_S = 30.0
#: The page route's ``group_interval`` in soulwatch's config (the preset's P1 value):
#: the resolved notification goes out at the group's next flush.
SW_PAGE_GROUP_INTERVAL_S = 60.0

SOULWATCH = "soulwatch"
AM_DEFAULTS = "Prometheus + Alertmanager (defaults)"
AM_GW0 = "Prometheus + Alertmanager (group_wait 0)"
CONFIGS = (SOULWATCH, AM_DEFAULTS, AM_GW0)


# -- receivers ------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """One notification about the benchmark's alert, as a receiver got it."""

    at: float
    status: str
    starts_at: float | None


class Receiver:
    """A local webhook receiver that timestamps every notification it gets."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner._record(at, body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def _record(self, at: float, body: bytes) -> None:
        try:
            payload = json.loads(body)
        except ValueError:
            return
        for alert in payload.get("alerts", []):
            if alert.get("labels", {}).get("alertname") != ALERTNAME:
                continue
            starts = alert.get("startsAt")
            with self._lock:
                self.deliveries.append(
                    Delivery(at, str(alert.get("status")), rfc3339(starts) if starts else None)
                )

    def first(self, status: str) -> Delivery | None:
        """The first delivery with ``status`` (``firing`` / ``resolved``) since the last clear."""
        with self._lock:
            return next((d for d in self.deliveries if d.status == status), None)

    def clear(self) -> None:
        """Forget what was received."""
        with self._lock:
            self.deliveries.clear()


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$")


def rfc3339(text: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (Go writes up to nanoseconds)."""
    m = _RFC3339.match(text)
    if m is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    frac = (m.group(2) or ".0")[:7]
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.fromisoformat(m.group(1) + frac + tz).timestamp()


# -- processes ------------------------------------------------------------------------


class Processes:
    """Every subprocess of one repetition, each logging to a file; all stopped on exit."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self._procs: list[tuple[str, subprocess.Popen[bytes], TextIO]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None) -> Any:
        """Start ``argv`` with its output in ``<logdir>/<name>.log``."""
        log = (self.logdir / f"{name}.log").open("a")
        proc = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        self._procs.append((name, proc, log))
        return proc

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
        """Stop one process (``sig`` first, SIGKILL after 10 s) and reap it."""
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a process's log."""
        path = self.logdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        for _, proc, log in reversed(self._procs):
            self.stop(proc)
            log.close()
        self._procs.clear()


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, check: Callable[[], bool], timeout: float, every: float = 0.1) -> None:
    """Poll ``check`` until it is true; raise naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, IndexError):
            if check():
                return
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:.0f} s")


# -- configuration --------------------------------------------------------------------


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text)
    if m is None:
        raise ValueError(f"unsupported duration {text!r}")
    return float(m.group(1)) * units[m.group(2)]


def rule_for_s() -> float:
    """The ``for`` of the benchmark's rule, read from the rule file both sides load."""
    doc = yaml.safe_load(RULES.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == ALERTNAME:
                return _duration_s(str(rule["for"]))
    raise ValueError(f"{RULES} has no {ALERTNAME} rule")


_GLOBAL = {
    "scrape_interval": f"{SCRAPE_S:g}s",
    "scrape_timeout": "4s",
    "evaluation_interval": f"{EVAL_S:g}s",
}


def _backend_job(backend_port: int) -> dict[str, Any]:
    return {"job_name": "backend", "static_configs": [{"targets": [f"127.0.0.1:{backend_port}"]}]}


def _route(page_group_wait: str | None, page_group_interval: str | None) -> dict[str, Any]:
    """The preset's routing shape: everything to chat after 30 s, P1 also pages."""
    page: dict[str, Any] = {"matchers": ['priority="P1"'], "receiver": "page"}
    if page_group_wait is not None:
        page["group_wait"] = page_group_wait
    if page_group_interval is not None:
        page["group_interval"] = page_group_interval
    return {"receiver": "chat", "group_by": ["alertname", "service"], "routes": [page]}


def soulwatch_config(port: int, data_dir: Path, backend_port: int, receiver: str) -> dict[str, Any]:
    """soulwatch: the scrape job, intervals and rule file, preset-style routing to the receiver."""
    route = _route("0s", f"{SW_PAGE_GROUP_INTERVAL_S:g}s")
    route.update(group_wait="30s", group_interval="5m", repeat_interval="4h")
    route["routes"][0]["repeat_interval"] = "1h"
    return {
        "listen": f"127.0.0.1:{port}",
        "data_dir": str(data_dir),
        "global": dict(_GLOBAL),
        "rule_files": [str(RULES)],
        "scrape_configs": [_backend_job(backend_port)],
        "alerting": {
            "route": route,
            "receivers": [
                {"name": "chat"},
                {"name": "page", "webhook_configs": [{"url": receiver}]},
            ],
        },
    }


def prometheus_config(backend_port: int, alertmanagers: Sequence[int]) -> dict[str, Any]:
    """Prometheus: the same scrape job, intervals and rule file; alerts to both Alertmanagers."""
    targets = [f"127.0.0.1:{p}" for p in alertmanagers]
    return {
        "global": dict(_GLOBAL),
        "rule_files": [str(RULES)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": targets}]}]},
        "scrape_configs": [_backend_job(backend_port)],
    }


def alertmanager_config(receiver: str, *, page_group_wait: str | None) -> dict[str, Any]:
    """Alertmanager: the same routing shape; ``group_wait`` unset (default 30s) or given."""
    return {
        "route": _route(page_group_wait, None),
        "receivers": [{"name": "chat"}, {"name": "page", "webhook_configs": [{"url": receiver}]}],
    }


def _write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- one repetition -------------------------------------------------------------------


@dataclass
class Measure:
    """One configuration's figures in one repetition (``None``: did not happen in time)."""

    fault_to_page: float | None = None
    #: Fault to ``activeAt``: the first failing scrape, then the first evaluation after it.
    fault_to_pending: float | None = None
    after_for: float | None = None
    firing_to_page: float | None = None


@dataclass
class Repetition:
    """Everything measured in one repetition."""

    measures: dict[str, Measure] = field(default_factory=lambda: {c: Measure() for c in CONFIGS})
    soulwatch_resolved: float | None = None
    prometheus_inactive: float | None = None


def _query_up(client: httpx.Client, base: str) -> float | None:
    r = client.get(f"{base}/api/v1/query", params={"query": 'up{job="backend"}'})
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else None


def _scraped(client: httpx.Client, base: str) -> bool:
    return _query_up(client, base) == 1.0


def _quiet(client: httpx.Client, base: str) -> bool:
    return not _alerts(client, base)


def _alerts(client: httpx.Client, base: str) -> list[dict[str, Any]]:
    r = client.get(f"{base}/api/v1/alerts")
    r.raise_for_status()
    return [a for a in r.json()["data"]["alerts"] if a["labels"].get("alertname") == ALERTNAME]


def _alertmanagers(client: httpx.Client, base: str) -> list[Any]:
    r = client.get(f"{base}/api/v1/alertmanagers")
    r.raise_for_status()
    return list(r.json()["data"]["activeAlertmanagers"])


def _ready(client: httpx.Client, url: str) -> bool:
    return client.get(url).status_code == 200


def run_repetition(
    workdir: Path,
    src: Path,
    receivers: dict[str, Receiver],
    phase: float,
    for_s: float,
) -> Repetition:
    """Start everything, inject the fault, measure, remove it, stop everything."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")]))
    ports = {name: free_port() for name in ("backend", "soulwatch", "prom", "am0", "am1")}
    sw_url = f"http://127.0.0.1:{ports['soulwatch']}"
    prom_url = f"http://127.0.0.1:{ports['prom']}"
    backend_argv = [sys.executable, str(BACKEND), str(ports["backend"])]
    rep = Repetition()
    with Processes(workdir) as procs, httpx.Client(timeout=5.0, trust_env=False) as client:
        try:
            backend = procs.start("backend", backend_argv, env)
            wait_until(
                "the backend serving /metrics",
                lambda: _ready(client, f"http://127.0.0.1:{ports['backend']}/metrics"),
                30,
            )
            for name, gw, receiver in (
                ("am0", None, receivers[AM_DEFAULTS]),
                ("am1", "0s", receivers[AM_GW0]),
            ):
                cfg = _write(
                    workdir / f"{name}.yml",
                    alertmanager_config(receiver.url, page_group_wait=gw),
                )
                procs.start(
                    name,
                    [
                        "prometheus-alertmanager",
                        f"--config.file={cfg}",
                        f"--storage.path={workdir / name}",
                        f"--web.listen-address=127.0.0.1:{ports[name]}",
                        "--cluster.listen-address=",
                    ],
                )
            prom_cfg = _write(
                workdir / "prometheus.yml",
                prometheus_config(ports["backend"], [ports["am0"], ports["am1"]]),
            )
            procs.start(
                "prometheus",
                [
                    "prometheus",
                    f"--config.file={prom_cfg}",
                    f"--storage.tsdb.path={workdir / 'prom-data'}",
                    f"--web.listen-address=127.0.0.1:{ports['prom']}",
                ],
            )
            sw_cfg = _write(
                workdir / "soulwatch.yaml",
                soulwatch_config(
                    ports["soulwatch"],
                    workdir / "sw-data",
                    ports["backend"],
                    receivers[SOULWATCH].url,
                ),
            )
            procs.start(
                "soulwatch", [sys.executable, "-m", "soulwatch", "run", "-c", str(sw_cfg)], env
            )
            for name in ("am0", "am1"):
                am_ready = f"http://127.0.0.1:{ports[name]}/-/ready"
                wait_until(f"{name} ready", functools.partial(_ready, client, am_ready), 30)
            wait_until("Prometheus ready", lambda: _ready(client, f"{prom_url}/-/ready"), 30)
            wait_until(
                "Prometheus discovering both Alertmanagers",
                lambda: len(_alertmanagers(client, prom_url)) == 2,
                30,
            )
            # Steady: both monitors have scraped the backend and nothing is pending or firing.
            for base in (prom_url, sw_url):
                scraped = functools.partial(_scraped, client, base)
                quiet = functools.partial(_quiet, client, base)
                wait_until(f"a successful scrape by {base}", scraped, 40)
                wait_until(f"no alert at {base}", quiet, 30)
            for receiver in receivers.values():
                receiver.clear()

            # The fault, at a random phase of every scrape and evaluation schedule.
            time.sleep(phase)
            fault_at = time.time()
            procs.stop(backend, signal.SIGKILL)
            deadline = for_s + SCRAPE_S + EVAL_S + AM_DEFAULT_GROUP_WAIT_S + 30.0
            with contextlib.suppress(TimeoutError):
                wait_until(
                    "every receiver paged",
                    lambda: all(r.first("firing") for r in receivers.values()),
                    deadline,
                    every=0.05,
                )
            active_at: dict[str, float | None] = {}
            for cfg_name, base in ((SOULWATCH, sw_url), (AM_DEFAULTS, prom_url)):
                alerts = _alerts(client, base)
                active_at[cfg_name] = rfc3339(alerts[0]["activeAt"]) if alerts else None
            active_at[AM_GW0] = active_at[AM_DEFAULTS]
            for cfg_name, receiver in receivers.items():
                page = receiver.first("firing")
                measure = rep.measures[cfg_name]
                if page is None:
                    continue
                measure.fault_to_page = page.at - fault_at
                active = active_at[cfg_name]
                if active is not None:
                    measure.fault_to_pending = active - fault_at
                    measure.after_for = page.at - (active + for_s)
                if page.starts_at is not None:
                    measure.firing_to_page = page.at - page.starts_at

            # Remove the fault; soulwatch's resolved notification, Prometheus's alert ending.
            fixed_at = time.time()
            procs.start("backend-again", backend_argv, env)
            resolve_deadline = SW_PAGE_GROUP_INTERVAL_S + SCRAPE_S + EVAL_S + 30.0
            with contextlib.suppress(TimeoutError):
                wait_until(
                    "Prometheus's alert ending",
                    lambda: not _alerts(client, prom_url),
                    resolve_deadline,
                    every=0.25,
                )
                rep.prometheus_inactive = time.time() - fixed_at
            with contextlib.suppress(TimeoutError):
                wait_until(
                    "soulwatch's resolved notification",
                    lambda: receivers[SOULWATCH].first("resolved") is not None,
                    resolve_deadline,
                    every=0.1,
                )
            resolved = receivers[SOULWATCH].first("resolved")
            if resolved is not None:
                rep.soulwatch_resolved = resolved.at - fixed_at
        except TimeoutError as exc:
            logs = "\n".join(
                f"--- {n}.log\n{procs.tail(n)}"
                for n in ("backend", "soulwatch", "prometheus", "am0", "am1")
            )
            raise RuntimeError(f"{exc}\n{logs}") from exc
    return rep


# -- the table ------------------------------------------------------------------------


def _stats(values: Sequence[float | None]) -> tuple[float, float, float, int] | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return statistics.median(got), min(got), max(got), len(values) - len(got)


def _span(values: Sequence[float | None], digits: int = 1) -> str:
    s = _stats(values)
    if s is None:
        return "never"
    med, lo, hi, missed = s
    text = f"{med:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
    return text + (f", {missed} missed" if missed else "")


def table(reps: Sequence[Repetition], for_s: float) -> str:
    """The Markdown table of fault-to-page times per configuration."""
    window = SCRAPE_S + EVAL_S
    expected = {
        SOULWATCH: (for_s, for_s + window),
        AM_DEFAULTS: (for_s + AM_DEFAULT_GROUP_WAIT_S, for_s + window + AM_DEFAULT_GROUP_WAIT_S),
        AM_GW0: (for_s, for_s + window),
    }
    column = {c: [r.measures[c] for r in reps] for c in CONFIGS}
    sw = _stats([m.fault_to_page for m in column[SOULWATCH]])
    lines = [
        "| configuration | fault → page, s: median (min–max) | fault → pending (`activeAt`), s"
        " | page after `for` expired, s | firing → page, s | expected fault → page, s"
        " | ratio to soulwatch (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in CONFIGS:
        ms = column[name]
        own = _stats([m.fault_to_page for m in ms])
        ratio = f"{own[0] / sw[0]:.2f}×" if own and sw else "n/a"
        lo, hi = expected[name]
        lines.append(
            f"| {name} | {_span([m.fault_to_page for m in ms])}"
            f" | {_span([m.fault_to_pending for m in ms], 2)}"
            f" | {_span([m.after_for for m in ms], 2)}"
            f" | {_span([m.firing_to_page for m in ms], 3)}"
            f" | {lo:g}–{hi:g} | {ratio} |"
        )
    return "\n".join(lines)


def verdict(reps: Sequence[Repetition]) -> list[str]:
    """The goal, checked: within one evaluation interval after ``for``, ahead of both peers."""
    out = []
    sw_after = [r.measures[SOULWATCH].after_for for r in reps]
    worst = max((v for v in sw_after if v is not None), default=None)
    within = worst is not None and None not in sw_after and worst <= EVAL_S
    out.append(
        f"- soulwatch paged within one evaluation interval ({EVAL_S:g} s) after `for` expired"
        f" in every repetition: {'yes' if within else 'NO'}"
        + (f" (worst {worst:.2f} s)" if worst is not None else "")
    )
    sw_page = _stats([r.measures[SOULWATCH].fault_to_page for r in reps])
    for peer in (AM_DEFAULTS, AM_GW0):
        st = _stats([r.measures[peer].fault_to_page for r in reps])
        pairs = [
            (r.measures[SOULWATCH].fault_to_page, r.measures[peer].fault_to_page) for r in reps
        ]
        first = sum(1 for s, p in pairs if s is not None and (p is None or s < p))
        if sw_page and st:
            # A lower median alone can be luck of the schedules' phases: being ahead
            # also means paging first in most repetitions.
            ahead = sw_page[0] < st[0] and first > len(reps) / 2
            out.append(
                f"- ahead of {peer}: {'yes' if ahead else 'NO'} (median {sw_page[0]:.1f} s"
                f" vs {st[0]:.1f} s; soulwatch paged first in {first} of {len(reps)}"
                " repetitions)"
            )
    sw_res = _stats([r.soulwatch_resolved for r in reps])
    prom_res = _stats([r.prometheus_inactive for r in reps])
    if sw_res:
        out.append(
            f"- after the backend came back: soulwatch's resolved notification in"
            f" {_span([r.soulwatch_resolved for r in reps])} s (its page route's group_interval"
            f" is {SW_PAGE_GROUP_INTERVAL_S:g} s)"
            + (
                f"; Prometheus's alert inactive in {_span([r.prometheus_inactive for r in reps])} s"
                if prom_res
                else ""
            )
        )
    return out


def _version(argv: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the repetitions and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fault phases")
    parser.add_argument(
        "--src",
        type=Path,
        default=REPO / "src",
        help="the soulwatch source tree run by the subprocesses (default: this checkout's)",
    )
    args = parser.parse_args(argv)
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            print(f"alert_latency: {binary} is not installed", file=sys.stderr)
            return 2
    for_s = rule_for_s()
    rng = random.Random(args.seed)
    load_before = os.getloadavg()
    reps: list[Repetition] = []
    with contextlib.ExitStack() as stack:
        receivers = {c: stack.enter_context(Receiver(c)) for c in CONFIGS}
        base = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="alert-latency-")))
        for i in range(args.reps):
            workdir = base / f"rep{i}"
            workdir.mkdir()
            phase = rng.uniform(0.0, max(SCRAPE_S, EVAL_S))
            rep = run_repetition(workdir, args.src.resolve(), receivers, phase, for_s)
            reps.append(rep)
            pages = ", ".join(
                f"{c.split(' (')[-1].rstrip(')')}: "
                + (f"{m.fault_to_page:.2f} s" if m.fault_to_page is not None else "never")
                for c, m in rep.measures.items()
            )
            print(f"repetition {i + 1}/{args.reps} (phase {phase:.2f} s): {pages}", flush=True)
    load_after = os.getloadavg()
    print()
    print(
        f'Rule `up{{job="backend"}} == 0` for {for_s:g}s; scrape and evaluation interval'
        f" {SCRAPE_S:g} s on both sides; {len(reps)} repetitions."
    )
    print(
        f"Machine: {os.cpu_count()} cores ({platform.machine()}), shared with parallel work;"
        f" load average {load_before[0]:.1f} before, {load_after[0]:.1f} after."
        f" {_version(['prometheus', '--version'])};"
        f" {_version(['prometheus-alertmanager', '--version'])};"
        f" Python {platform.python_version()}."
    )
    print()
    print(table(reps, for_s))
    print()
    print("\n".join(verdict(reps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
