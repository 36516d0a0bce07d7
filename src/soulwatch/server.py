"""``soulwatch run``: a :class:`~soulwatch.service.Monitor` behind uvicorn, and its signals.

:func:`serve` binds the listen address first (a taken port is reported
before anything is opened), starts the monitor, serves its API, reloads on
SIGHUP and stops everything on SIGTERM/SIGINT within a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections.abc import Iterator

import structlog

from soulwatch.api.app import console_of
from soulwatch.api.guard import max_request_head_bytes
from soulwatch.clock import Clock
from soulwatch.config import SoulwatchConfig, parse_listen
from soulwatch.exceptions import ConfigError, SoulwatchError
from soulwatch.gc_tuning import tune_gc
from soulwatch.log_setup import configure_logging
from soulwatch.service import Monitor

__all__ = ["bind_listener", "configure_logging", "serve"]

_log = structlog.get_logger("soulwatch.server")

#: The interpreter's thread switch interval while serving (Python's default is 5 ms).
SWITCH_INTERVAL = 0.001


def bind_listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port``; ``OSError`` when it cannot be.

    The protocol is spelled out (``IPPROTO_TCP``, not 0): asyncio turns
    Nagle's algorithm off (``TCP_NODELAY``) only on the connections of such a
    socket. With it on, a response written as headers then body waits for
    the client's delayed ACK, about 40 ms, on every request of a kept-alive
    connection after the first.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


async def serve(
    config: SoulwatchConfig, *, clock: Clock | None = None, install_signals: bool = True
) -> None:
    """Run a monitor behind uvicorn until SIGTERM/SIGINT; SIGHUP reloads the config."""
    import uvicorn

    host, port = parse_listen(config.listen)
    # Bind first: a taken port is reported before anything is opened.
    try:
        sock = bind_listener(host, port)
    except OSError as exc:
        raise SoulwatchError(f"cannot listen on {config.listen}: {exc.strerror}") from None
    # Worker threads running PromQL hold the GIL; a short switch interval hands
    # it back to the event loop sooner, so answers wait less behind a query.
    sys.setswitchinterval(SWITCH_INTERVAL)
    monitor = Monitor(config, clock=clock)
    try:
        await monitor.start()
    except BaseException:
        sock.close()
        raise
    # What the start built lives as long as the monitor: frozen, it is never walked
    # again, and young collections come rarer (soulwatch.gc_tuning).
    tune_gc()

    app = monitor.app()
    console = console_of(app)
    await console.start()

    class _Server(uvicorn.Server):
        # Our signal handlers stop the whole monitor, not only the HTTP server.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    server = _Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            # No handlers of its own: its records go through soulwatch's chain (JSON mode).
            log_config=None,
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=max_request_head_bytes(config.api),
        )
    )
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    async def reload() -> None:
        # The reloader logs the error; the old config keeps running.
        with contextlib.suppress(ConfigError):
            await monitor.reload()

    if install_signals:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(reload()))
    server_task = loop.create_task(server.serve(sockets=[sock]))
    stop_task = loop.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({server_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if server_task in done and server_task.exception() is not None:
            raise SoulwatchError(f"HTTP server failed: {server_task.exception()}")
    finally:
        started = time.monotonic()
        # Open pages' event streams end first, so uvicorn has no response to wait for.
        console.close_streams()
        server.should_exit = True
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(server_task, 10)
        stop_task.cancel()
        await console.aclose()
        await monitor.stop()
        _log.info("shutdown complete", seconds=round(time.monotonic() - started, 3))
