"""kill -9 in the middle of sending, then restart: nothing lost, duplicates share their key."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.helpers import REPO, subprocess_env, wait_until

GROUPS = 60


class _SlowWebhook:
    """A webhook receiver that answers slowly, so a kill lands while requests are in flight.

    (tests.helpers.Recorder computes replies under its lock; a slow reply there
    would serialise every request.) A client killed mid-request is expected here,
    so broken connections are ignored.
    """

    def __init__(self, delay: float) -> None:
        self.received: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer._lock:
                    outer.received.append(
                        (body["groupLabels"]["alertname"], self.headers["Idempotency-Key"])
                    )
                time.sleep(delay)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # the client was killed with -9: that is the point of the test

        self._server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    def __enter__(self) -> _SlowWebhook:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


@pytest.mark.slow
def test_kill_9_mid_send_loses_nothing(tmp_path):
    with _SlowWebhook(delay=0.2) as hook:
        argv = [
            sys.executable,
            "-m",
            "tests.alerting.crash_worker",
            str(tmp_path),
            hook.url,
            str(GROUPS),
        ]
        env = subprocess_env()
        first = subprocess.Popen(
            argv, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_until(lambda: hook.count() >= 20, timeout=30, what="first sends")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(timeout=10)
        before = hook.count()
        assert before < GROUPS, "the kill landed before everything was sent"
        second = subprocess.run(
            argv, env=env, cwd=REPO, capture_output=True, timeout=120, check=False
        )
        assert second.returncode == 0, second.stdout + second.stderr
        keys_by_group: dict[str, set[str]] = defaultdict(set)
        counts: dict[str, int] = defaultdict(int)
        for group, key in hook.received:
            keys_by_group[group].add(key)
            counts[group] += 1
    assert sorted(keys_by_group) == sorted(f"A{i}" for i in range(GROUPS)), "none lost"
    assert all(len(keys) == 1 for keys in keys_by_group.values()), "a redelivery reuses its key"
    # Requests in flight at the kill were sent again after the restart (at-least-once).
    assert any(n > 1 for n in counts.values())
