"""Real remote write receivers for tests: Prometheus 2.42 and VictoriaMetrics, and a soulwatch run.

Each receiver keeps its storage directory, so it can be stopped (an outage)
and started again on the same port with its data.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from soulwatch.promql.engine import Engine
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from tests.helpers import free_port, need_binary, soulwatch_command, started, subprocess_env


class Receiver:
    """A receiver binary with a fixed port and data directory, started and stopped at will."""

    kind = ""
    write_path = ""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / f"{self.kind}-data"
        self.data.mkdir(parents=True, exist_ok=True)

    @property
    def write_url(self) -> str:
        """Where soulwatch sends."""
        return self.url + self.write_path

    def argv(self) -> list[str]:
        """The command line."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether it answers queries."""
        raise NotImplementedError

    @contextlib.contextmanager
    def running(self) -> Iterator[Receiver]:
        """The receiver up for the duration of the block."""
        with started(self.argv(), ready=self.ready, timeout=60):
            yield self

    def query(self, expr: str, t: float) -> list[tuple[dict[str, str], float]]:
        """An instant query through the receiver's Prometheus API."""
        r = httpx.get(
            f"{self.url}/api/v1/query", params={"query": expr, "time": f"{t:.3f}"}, timeout=30
        )
        body: dict[str, Any] = r.json()
        assert body["status"] == "success", body
        return sorted(
            (dict(item["metric"]), float(item["value"][1])) for item in body["data"]["result"]
        )


class PrometheusReceiver(Receiver):
    """``prometheus --web.enable-remote-write-receiver``."""

    kind = "prometheus"
    write_path = "/api/v1/write"

    def argv(self) -> list[str]:
        config = self.workdir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1m\n")
        return [
            need_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--web.enable-remote-write-receiver",
        ]

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200


class VictoriaMetricsReceiver(Receiver):
    """Debian's single-node ``victoria-metrics``."""

    kind = "victoria-metrics"
    write_path = "/api/v1/write"

    def argv(self) -> list[str]:
        return [
            need_binary("victoria-metrics"),
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-storageDataPath={self.data}",
            # Answer from the newest sample, as Prometheus does (the default hides 30 s).
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-loggerLevel=ERROR",
        ]

    def ready(self) -> bool:
        return httpx.get(f"{self.url}/health", timeout=1).status_code == 200

    def query(self, expr: str, t: float) -> list[tuple[dict[str, str], float]]:
        # Make what was just written searchable before asking.
        httpx.get(f"{self.url}/internal/force_flush", timeout=30)
        return super().query(expr, t)


def soulwatch_config(workdir: Path, receivers: list[Receiver], *, listen_port: int) -> Path:
    """A soulwatch.yaml scraping itself every second and writing to every receiver."""
    entries = "".join(
        f"  - url: {r.write_url}\n"
        f"    name: {r.kind}\n"
        "    queue_config: {batch_send_deadline: 1s, min_backoff: 50ms, max_backoff: 500ms}\n"
        for r in receivers
    )
    config = workdir / "soulwatch.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{listen_port}\n"
        f"data_dir: {workdir / 'sw-data'}\n"
        "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: self\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{listen_port}']}}]\n"
        f"remote_write:\n{entries}"
    )
    return config


@contextlib.contextmanager
def soulwatch_running(config: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``soulwatch run`` in a subprocess until the block ends (SIGTERM, a clean stop)."""
    ready = lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).is_success  # noqa: E731
    with started(
        soulwatch_command("run", "-c", str(config)), env=subprocess_env(), ready=ready, timeout=60
    ) as proc:
        yield proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait: soulwatch flushes its queues and exits."""
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """``kill -9``: no flush, no cursor saved at exit."""
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def soulwatch_answers(workdir: Path, exprs: list[str], t: float) -> dict[str, list[Any]]:
    """The answers of soulwatch's own engine over its data directory (soulwatch stopped)."""
    out: dict[str, list[Any]] = {}
    with TSDB(StorageConfig(path=workdir / "sw-data" / "tsdb")) as db:
        engine = Engine(db)
        for expr in exprs:
            result = engine.instant(expr, round(t * 1000))
            out[expr] = sorted((s.labels.to_dict(), s.value) for s in result.value)
    return out


def receiver_answers(receiver: Receiver, exprs: list[str], t: float) -> dict[str, list[Any]]:
    """The same queries on a receiver."""
    return {expr: receiver.query(expr, t) for expr in exprs}


def differences(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> dict[str, Any]:
    """The queries whose answers differ, with both answers (values to 1e-9 relative)."""
    out: dict[str, Any] = {}
    for expr in a.keys() | b.keys():
        mine, theirs = a.get(expr, []), b.get(expr, [])
        equal = len(mine) == len(theirs) and all(
            la == lb and math.isclose(va, vb, rel_tol=1e-9)
            for (la, va), (lb, vb) in zip(mine, theirs, strict=True)
        )
        if not equal:
            out[expr] = {"soulwatch": mine, "receiver": theirs}
    return out


def wait_for_same(
    mine: dict[str, list[Any]], receiver: Receiver, exprs: list[str], t: float, timeout: float
) -> None:
    """Poll ``receiver`` (bounded) until it answers as soulwatch did; else fail with the diff."""
    deadline = time.monotonic() + timeout
    diff: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            diff = differences(mine, receiver_answers(receiver, exprs, t))
        except httpx.HTTPError as exc:
            diff = {"error": repr(exc)}
        if not diff:
            return
        time.sleep(0.2)
    raise AssertionError(f"{receiver.kind} answers differ after {timeout} s: {diff}")


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if predicate():
                return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def queue_metric(text: str, name: str, remote_name: str) -> float:
    """The value of ``name`` for queue ``remote_name`` in an exposition ``text``."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels.get("remote_name") == remote_name:
                return float(sample.value)
    raise AssertionError(f"{name} for {remote_name} not exported")
