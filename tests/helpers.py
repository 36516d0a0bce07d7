"""Shared test support: real servers on 127.0.0.1, bounded waits, required binaries.

Everything here starts real things (uvicorn, redis-server, a recording HTTP
server) and stops them on exit. Loops are bounded in count and time.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent


def _find_shared() -> Path:
    """The shared reference data beside the checkout (``../shared``).

    ``SOULWATCH_SHARED_DIR`` overrides it; otherwise the nearest ``shared``
    folder holding ``conformance/`` above the checkout is used, so a git
    worktree one level deeper finds the same data.
    """
    override = os.environ.get("SOULWATCH_SHARED_DIR")
    if override:
        return Path(override)
    for parent in REPO.parents:
        if (parent / "shared" / "conformance").is_dir():
            return parent / "shared"
    return REPO.parent / "shared"


SHARED = _find_shared()
#: Prometheus's PromQL test scripts (read-only reference data).
CONFORMANCE_DIR = SHARED / "conformance" / "promql"


def in_ci() -> bool:
    """True when running in CI (``CI`` set): missing binaries then fail, not skip."""
    return bool(os.environ.get("CI"))


def need_binary(name: str) -> str:
    """The path of ``name``; skips the test outside CI when it is missing, fails in CI."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (scripts/setup.sh installs it as root)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


@contextlib.contextmanager
def headless_chromium(*extra_args: str) -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright (it cannot download its own
    browsers here); skips outside CI when either is missing, fails in CI."""
    path = need_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        args = ["--no-sandbox", "--disable-gpu", *extra_args]
        browser = pw.chromium.launch(executable_path=path, args=args)
        try:
            yield browser
        finally:
            browser.close()


def need_conformance() -> list[Path]:
    """Prometheus's PromQL test scripts from the shared reference data.

    A clone of the repository alone has no ``../shared``: outside CI the test
    is skipped saying where the data was looked for; in CI it fails.
    """
    scripts = sorted(CONFORMANCE_DIR.glob("*.test"))
    if len(scripts) < 8:
        message = (
            f"Prometheus's PromQL test scripts are not in {CONFORMANCE_DIR}: the shared "
            "reference data is looked for beside the checkout, or where SOULWATCH_SHARED_DIR "
            "points"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return scripts


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll ``predicate`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except Exception as exc:  # the thing being waited for may not be up yet
            last_exc = exc
        else:
            if result:
                return result
        time.sleep(interval)
    detail = f" (last error: {last_exc!r})" if last_exc else ""
    pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}{detail}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


class UvicornThread:
    """A real uvicorn server for an ASGI app, in a background thread."""

    def __init__(self, app: Any, port: int | None = None, **config: Any) -> None:
        import uvicorn

        self.port = port or free_port()
        cfg = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on", **config
        )
        self.server = uvicorn.Server(cfg)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> UvicornThread:
        """Start and wait until the server accepts requests."""
        self.server.should_exit = False
        self._thread = threading.Thread(target=self.server.run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.server.started, timeout=10, what=f"uvicorn on {self.port}")
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for the thread."""
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.server.started = False

    def __enter__(self) -> UvicornThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer:
    """A real redis-server on a free port, no persistence; can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = need_binary("redis-server")
        self.port = port or free_port()
        self._dir = tempfile.TemporaryDirectory(prefix="soulwatch-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it accepts connections."""
        self._proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self._dir.name,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: port_open(self.port), timeout=10, what=f"redis-server on {self.port}")
        return self

    def stop(self) -> None:
        """Stop the server (it can be started again on the same port)."""
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
            self._proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._dir.cleanup()


@dataclass
class RecordedRequest:
    """One request a :class:`Recorder` received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: Unix time at which it arrived
    received_at: float = field(default_factory=time.time)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


@dataclass
class Reply:
    """What a :class:`Recorder` answers: status, body, headers."""

    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


class Recorder:
    """A local HTTP server that records every request; it stands in for Slack,
    PagerDuty, GitHub, Sentry or any webhook receiver.

    ``replies`` is consumed in order (one per request); when it is empty,
    ``default`` answers. ``handler`` may compute a reply from the request.
    """

    def __init__(
        self,
        *,
        default: Reply | None = None,
        handler: Callable[[RecordedRequest], Reply | None] | None = None,
    ) -> None:
        self.requests: list[RecordedRequest] = []
        self.replies: list[Reply] = []
        self.default = default or Reply()
        self.handler = handler
        self._lock = threading.Lock()
        recorder = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                req = RecordedRequest(
                    self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with recorder._lock:
                    recorder.requests.append(req)
                    reply = recorder.handler(req) if recorder.handler else None
                    if reply is None:
                        reply = recorder.replies.pop(0) if recorder.replies else recorder.default
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def received(self, path_prefix: str = "") -> list[RecordedRequest]:
        """A snapshot of the requests whose path starts with ``path_prefix``."""
        with self._lock:
            return [r for r in self.requests if r.path.startswith(path_prefix)]

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def soulwatch_command(*args: str) -> list[str]:
    """The argv to run the ``soulwatch`` CLI from this checkout in a subprocess."""
    import sys

    return [sys.executable, "-m", "soulwatch", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that imports soulwatch from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), str(REPO), *filter(None, [env.get("PYTHONPATH")])]
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def started(
    proc_argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    ready: Callable[[], Any] | None = None,
    timeout: float = 20.0,
    output: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run a subprocess for the duration of the block; wait for ``ready``; always stop it.

    Its stdout and stderr go to ``output`` when given (to read after), else to a temporary file.
    """
    with output.open("w+b") if output is not None else tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(proc_argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        try:
            if ready is not None:
                deadline = time.monotonic() + timeout
                while not _safe(ready):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        log.seek(0)
                        pytest.fail(
                            f"{proc_argv[0]} did not become ready (exit {proc.poll()}):\n"
                            + log.read().decode(errors="replace")[-4000:]
                        )
                    time.sleep(0.05)
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def _safe(predicate: Callable[[], Any]) -> bool:
    try:
        return bool(predicate())
    except Exception:
        return False
