"""A real ``soulwatch run`` paging on a target whose fault a test switches on and off.

The target is a local HTTP server exposing one gauge, ``fault``; the rule
``Broken`` fires while it is 1. The receiver is a recording webhook. The
monitor runs as a subprocess so a test can ``kill -9`` it and start it again
on the same data directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx

from tests.helpers import (
    RecordedRequest,
    Recorder,
    Reply,
    free_port,
    soulwatch_command,
    subprocess_env,
)


@contextlib.contextmanager
def receiver() -> Iterator[Recorder]:
    """A recording webhook receiver that stays quiet when its client is killed mid-request."""
    with Recorder() as rec:
        # A kill -9 of the monitor resets its connections: expected here, not worth a traceback.
        rec._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        yield rec


class FaultTarget:
    """A scrape target whose ``fault`` gauge the test switches."""

    def __init__(self) -> None:
        self.on = False
        self._server = Recorder(handler=self._reply)

    def _reply(self, _req: RecordedRequest) -> Reply:
        self._server.requests.clear()  # scrapes are not worth remembering
        body = f"# TYPE fault gauge\nfault {int(self.on)}\n".encode()
        return Reply(200, body, {"Content-Type": "text/plain; version=0.0.4"})

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self._server.port}"

    def __enter__(self) -> FaultTarget:
        self._server.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.__exit__(*exc)


@dataclass(frozen=True)
class Timing:
    """The short intervals that let a test see many episodes in little time."""

    interval: str = "1s"
    for_: str = "0s"
    group_wait: str = "0s"
    group_interval: str = "30s"
    repeat_interval: str = "1h"


def write_config(
    directory: Path, target: str, hook: str, *, data_dir: Path, timing: Timing = Timing()
) -> Path:
    """Write ``soulwatch.yaml`` and ``rules.yml`` into ``directory``; return the config path."""
    (directory / "rules.yml").write_text(
        textwrap.dedent(
            f"""\
            groups:
              - name: faults
                rules:
                  - alert: Broken
                    expr: fault == 1
                    for: {timing.for_}
                    annotations:
                      summary: "{{{{ $labels.instance }}}} is broken"
            """
        )
    )
    config = directory / "soulwatch.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{free_port()}
            data_dir: {data_dir}
            global:
              scrape_interval: {timing.interval}
              scrape_timeout: {timing.interval}
              evaluation_interval: {timing.interval}
            rule_files: [rules.yml]
            scrape_configs:
              - job_name: target
                static_configs:
                  - targets: ["{target}"]
            alerting:
              route:
                receiver: pager
                group_by: [alertname]
                group_wait: {timing.group_wait}
                group_interval: {timing.group_interval}
                repeat_interval: {timing.repeat_interval}
              receivers:
                - name: pager
                  webhook_configs:
                    - url: {hook}/page
              delivery:
                initial_backoff: 1s
                max_backoff: 2s
            """
        )
    )
    return config


class MonitorProcess:
    """``soulwatch run -c <config>`` as a subprocess that may be killed and started again."""

    def __init__(self, config: Path, *, log_path: Path | None = None) -> None:
        self.config = config
        #: Where its output goes (appended across restarts); a temporary file when None.
        self.log_path = log_path
        listen = next(
            line.split(":", 1)[1].strip()
            for line in config.read_text().splitlines()
            if line.startswith("listen:")
        )
        self.base = f"http://{listen}"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.kills = 0

    def start(self, *, timeout: float = 30.0) -> None:
        """Start it and wait until ``/-/ready`` answers 200."""
        assert self.proc is None
        # Closed by kill9() or stop().
        self._log = self.log_path.open("ab") if self.log_path else tempfile.TemporaryFile()  # noqa: SIM115
        self.proc = subprocess.Popen(
            soulwatch_command("run", "-c", str(self.config)),
            env=subprocess_env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"soulwatch exited {self.proc.returncode}:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/-/ready", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        raise AssertionError(f"soulwatch did not become ready:\n{self.output()}")

    def output(self) -> str:
        """The last lines the process wrote."""
        if self._log is None:
            return ""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")[-4000:]

    def kill9(self) -> None:
        """``kill -9``: no shutdown, no final flush."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        self.kills += 1
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """Stop it cleanly if it runs (SIGTERM, then SIGKILL after 15 s)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` from the monitor's API."""
        return httpx.get(f"{self.base}{path}", timeout=5)

    def firing(self) -> bool:
        """Whether the API lists ``Broken`` as firing."""
        alerts = self.get("/api/v1/alerts").json()["data"]["alerts"]
        return any(a["state"] == "firing" for a in alerts)


@contextlib.contextmanager
def monitor(config: Path) -> Iterator[MonitorProcess]:
    """A started :class:`MonitorProcess`, always stopped on exit."""
    proc = MonitorProcess(config)
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()


def pages(hook: Recorder) -> list[tuple[str, str, str, dict[str, Any]]]:
    """``(status, idempotency key, startsAt of the first alert, body)`` of every page received."""
    out = []
    for r in hook.received("/page"):
        body = r.json()
        starts = body["alerts"][0]["startsAt"]
        out.append((body["status"], r.headers.get("idempotency-key", ""), starts, body))
    return out
