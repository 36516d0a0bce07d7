"""Agent mode: ``soulwatch run --agent`` collects (scrapes, probes, heartbeats), only remote-writes.

A real VictoriaMetrics receives what the agent collected; the agent's own
query API refuses queries as Prometheus's agent mode does. A receiver
outage with a ``kill -9`` of the agent in the middle of it loses no scrape:
the target counts the scrapes it served, and every count reaches the
receiver (all but, at most, the one the kill cut short).
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig, load_config, parse_config
from soulwatch.exceptions import ConfigError
from soulwatch.service import Monitor
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels, Matcher, MatchType
from tests.helpers import free_port, soulwatch_command, started, subprocess_env
from tests.remote.receivers import VictoriaMetricsReceiver, kill, stop, wait_for

UUID = "0b5e2d8c-6a1f-4c3e-9d7b-2f4a6c8e0a1b"


class _Target:
    """A scrape target whose counter is the number of scrapes it served."""

    def __init__(self) -> None:
        self.scrapes = 0
        lock = threading.Lock()
        target = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"ok\n"
                if self.path == "/metrics":
                    with lock:
                        target.scrapes += 1
                        n = target.scrapes
                    body = f"# TYPE agent_scrapes_total counter\nagent_scrapes_total {n}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @contextlib.contextmanager
    def serving(self) -> Iterator[_Target]:
        self._thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=10)


def _config(tmp: Path, port: int, target: int, vm: VictoriaMetricsReceiver) -> Path:
    path = tmp / "agent.yaml"
    path.write_text(
        f"listen: 127.0.0.1:{port}\n"
        f"data_dir: {tmp / 'agent-data'}\n"
        "global: {scrape_interval: 1s, scrape_timeout: 1s, external_labels: {site: edge-1}}\n"
        "scrape_configs:\n"
        f"  - {{job_name: target, static_configs: [{{targets: ['127.0.0.1:{target}']}}]}}\n"
        "probes:\n"
        "  - job_name: web\n"
        "    prober: http\n"
        f"    targets: ['http://127.0.0.1:{target}/']\n"
        "    interval: 1s\n"
        "    timeout: 1s\n"
        "heartbeats:\n"
        "  evaluation_interval: 1s\n"
        f"  checks: [{{name: nightly, uuid: {UUID}, period: 1h}}]\n"
        "remote_write:\n"
        f"  - url: {vm.write_url}\n"
        "    name: central\n"
        "    queue_config: {batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 500ms}\n"
    )
    return path


@contextlib.contextmanager
def _agent(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    ready = lambda: httpx.get(f"http://127.0.0.1:{port}/-/ready", timeout=1).is_success  # noqa: E731
    argv = soulwatch_command("run", "-c", str(config), "--agent")
    with started(argv, env=subprocess_env(), ready=ready, timeout=60) as proc:
        yield proc


def _has(vm: VictoriaMetricsReceiver, expr: str) -> bool:
    return bool(vm.query(expr, time.time()))


def test_an_agent_sends_scrapes_probes_and_heartbeats_and_answers_no_query(
    tmp_path: Path,
) -> None:
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _Target().serving() as target, vm.running():
        config = _config(tmp_path, port, target.port, vm)
        with _agent(config, port) as proc:
            assert httpx.get(f"{base}/ping/{UUID}", timeout=10).text == "OK"
            for expr in (
                'agent_scrapes_total{job="target", site="edge-1"}',
                'up{job="target"} == 1',
                'probe_success{job="web"} == 1',
                'probe_http_status_code{job="web"} == 200',
                "heartbeat_up == 1",
                "heartbeat_last_ping_timestamp_seconds > 0",
            ):
                wait_for(lambda e=expr: _has(vm, e), 20, f"{expr} at the receiver")  # type: ignore[misc]

            health = httpx.get(f"{base}/health", timeout=10).json()
            assert health["mode"] == "agent"
            assert health["remote_write"][0]["samples_sent"] > 0
            for path, params in (
                ("/api/v1/query", {"query": "up"}),
                ("/api/v1/query_range", {"query": "up", "start": "1", "end": "2", "step": "1"}),
                ("/api/v1/series", {"match[]": "up"}),
                ("/api/v1/labels", {}),
                ("/api/v1/label/__name__/values", {}),
                ("/api/v1/status/tsdb", {}),
                ("/api/v1/rules", {}),  # an agent evaluates no rules, sends no alerts
                ("/api/v1/alerts", {}),
                ("/api/v1/alertmanagers", {}),
            ):
                r = httpx.get(base + path, params=params, timeout=10)
                assert r.status_code == 422, (path, r.text)
                assert r.json()["errorType"] == "execution"
                assert "agent mode" in r.json()["error"]
            federate = httpx.get(f"{base}/federate", params={"match[]": "up"}, timeout=10)
            assert federate.status_code == 422
            assert "agent mode" in federate.text
            for page in ("/", "/targets", "/explore?expr=up"):
                r = httpx.get(base + page, timeout=10)
                assert r.status_code == 200, (page, r.text)
                assert "Agent mode" in r.text
            assert "unavailable in agent mode" in httpx.get(f"{base}/explore?expr=up").text
            stop(proc)


def test_an_agent_killed_during_an_outage_loses_no_scrape(tmp_path: Path) -> None:
    vm = VictoriaMetricsReceiver(tmp_path)
    port = free_port()
    with _Target().serving() as target:
        config = _config(tmp_path, port, target.port, vm)
        with contextlib.ExitStack() as outage:
            outage.enter_context(vm.running())
            with _agent(config, port) as proc:
                wait_for(lambda: _has(vm, "agent_scrapes_total"), 20, "the first samples")
                outage.close()  # the receiver goes down; the agent keeps scraping
                time.sleep(3)
                kill(proc)
                served_at_kill = target.scrapes
        with _agent(config, port) as proc:
            time.sleep(2)  # still down: the restarted agent scrapes and retries
            with vm.running():
                wait_for(
                    lambda: _has(vm, f"agent_scrapes_total > {served_at_kill + 2}"),
                    30,
                    "the backlog and new scrapes",
                )
                stop(proc)
                served = target.scrapes
                window = "[10m]"

                def complete() -> bool:
                    ((_, count),) = vm.query(
                        f"count_over_time(agent_scrapes_total{window})", time.time()
                    )
                    ((_, top),) = vm.query(
                        f"max_over_time(agent_scrapes_total{window})", time.time()
                    )
                    ((_, low),) = vm.query(
                        f"min_over_time(agent_scrapes_total{window})", time.time()
                    )
                    # Every scrape served from the agent's first to its last (one
                    # at most cut short by the kill: served, never committed).
                    return low == 1 and top == served and count >= top - 1

                wait_for(complete, 20, f"all {served} scrapes at the receiver")
    assert served > served_at_kill + 2


def test_an_agent_keeps_its_wal_until_remote_write_is_past_it(tmp_path: Path) -> None:
    """Maintenance writes no chunk; a segment goes once the reader is past it."""
    with TSDB(StorageConfig(path=tmp_path / "tsdb"), wal_only=True) as db:
        keep = [1]
        release = db.hold_wal(lambda: keep[0])
        labels = Labels.of(__name__="x", job="j")
        now = int(time.time() * 1000)
        for k in range(3):
            app = db.appender()
            app.append(labels, now + k, float(k))
            app.commit()
            db.maintain(force=True)  # closes the segment, as a full or old one is closed
        every = [Matcher(MatchType.EQUAL, "__name__", "x")]
        assert list(db.select(every, 0, now + 10)) == []  # nothing to query
        assert db.stats().chunks_written == 0
        segments = sorted(int(p.name) for p in db.wal_directory.iterdir() if p.name.isdigit())
        assert segments[0] == 1  # held: nothing sent yet
        assert len(segments) >= 3
        keep[0] = segments[-1]  # the reader acknowledged everything before the open segment
        db.maintain()
        after = sorted(int(p.name) for p in db.wal_directory.iterdir() if p.name.isdigit())
        assert after == [segments[-1]]
        release()


def test_agent_mode_without_remote_write_is_refused_with_the_reason(tmp_path: Path) -> None:
    with_rules = (
        "mode: agent\nrule_files: [rules.yml]\nremote_write: [{url: 'http://127.0.0.1:1/w'}]\n"
    )
    for text, reason in (
        ("mode: agent\n", "add at least one remote_write entry"),
        (with_rules, "rule_files is not allowed in agent mode"),
        (
            "mode: agent\nquery: {remote: {url: 'http://127.0.0.1:1'}}\n"
            "remote_write: [{url: 'http://127.0.0.1:1/w'}]\n",
            "query.remote is not allowed in agent mode",
        ),
        (
            "mode: agent\nha: {redis_url: 'redis://127.0.0.1:1'}\n"
            "remote_write: [{url: 'http://127.0.0.1:1/w'}]\n",
            "ha is not allowed in agent mode",
        ),
    ):
        with pytest.raises(ConfigError, match=reason):
            parse_config(text)
    path = tmp_path / "soulwatch.yaml"
    path.write_text("scrape_configs: []\n")
    out = subprocess.run(
        soulwatch_command("run", "-c", str(path), "--agent"),
        env=subprocess_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--agent: agent mode keeps no queryable store" in out.stderr
    assert "add at least one remote_write entry" in out.stderr
    assert SoulwatchConfig().mode == "server"


async def test_a_reload_keeps_the_agent_an_agent_and_refuses_rules(tmp_path: Path) -> None:
    path = tmp_path / "soulwatch.yaml"
    base = (
        f"data_dir: {tmp_path / 'data'}\n"
        "remote_write: [{url: 'http://127.0.0.1:9/api/v1/write'}]\n"
        "heartbeats: {checks: [{name: a, period: 1h}]}\n"
    )
    path.write_text(base)
    monitor = Monitor(load_config(path).with_overrides(agent=True), clock=SimulatedClock(1e9))
    await monitor.start()
    try:
        (tmp_path / "rules.yml").write_text("groups: []\n")
        path.write_text(base + f"rule_files: [{tmp_path / 'rules.yml'}]\n")
        with pytest.raises(ConfigError, match="rule_files is not allowed in agent mode"):
            await monitor.reload()
        path.write_text(base.replace("name: a", "name: b"))  # the --agent flag holds
        await monitor.reload()
        assert monitor.config.mode == "agent"
        assert [c.name for c in monitor.heartbeats.checks()] == ["b"]
        assert monitor.health()["mode"] == "agent"
    finally:
        await monitor.stop()
