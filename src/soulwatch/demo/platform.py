"""The demo's sample Soulcaster-like platform: Redis, the backend, the runner, the poller, traffic.

Everything listens on 127.0.0.1 and runs on the demo's clock. Faults are
injected through :class:`~soulwatch.demo.faults.Faults` and by stopping and
starting the backend or Redis for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
import uvicorn

from soulwatch.clock import Clock
from soulwatch.demo.backend import create_backend
from soulwatch.demo.browsers import BrowserTraffic
from soulwatch.demo.faults import Faults
from soulwatch.demo.miniredis import MiniRedis
from soulwatch.demo.traffic import Traffic
from soulwatch.demo.workers import AgentRunner, RedditPoller


def free_port() -> int:
    """A TCP port free on 127.0.0.1 a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemoRedis:
    """A real ``redis-server`` when installed (keeping its data over a stop), else MiniRedis."""

    def __init__(self, workdir: Path, *, embedded: bool = False) -> None:
        self.port = free_port()
        self._workdir = workdir
        self._binary = None if embedded else shutil.which("redis-server")
        self._proc: subprocess.Popen[bytes] | None = None
        self._mini: MiniRedis | None = None

    @property
    def kind(self) -> str:
        """``redis-server`` or ``embedded stand-in``."""
        return "redis-server" if self._binary else "embedded stand-in"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start (again) on the same port, with the data it had."""
        if self._binary is None:
            if self._mini is None:
                self._mini = MiniRedis(port=self.port)
            self._mini.port = self.port
            await self._mini.start()
            return
        # A save point makes redis-server write its data on SIGTERM and load it on start.
        self._proc = subprocess.Popen(
            [self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "3600 1", "--appendonly", "no", "--dir", str(self._workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        for _ in range(200):
            if await _port_open(self.port):
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    async def stop(self) -> None:
        """Stop it (a real outage: connections are refused)."""
        if self._mini is not None:
            await self._mini.stop()
        if self._proc is not None:
            self._proc.terminate()
            try:
                await asyncio.to_thread(self._proc.wait, 10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                await asyncio.to_thread(self._proc.wait, 5)
            self._proc = None


async def _port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True


class QuietServer(uvicorn.Server):
    """A uvicorn server that leaves signal handling to its host (the demo stops it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing."""
        yield


class Backend:
    """The sample backend under a real uvicorn server that can be stopped and restarted."""

    def __init__(self, faults: Faults, redis_url: str, *, soulwatch_url: str | None = None) -> None:
        self.port = free_port()
        self._faults = faults
        self._redis_url = redis_url
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = create_backend(faults, redis_url=redis_url, soulwatch_url=soulwatch_url)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """Whether it is serving."""
        return self._server is not None

    async def start(self) -> None:
        """Serve (again) on the same port."""
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="error",
            access_log=False, lifespan="off",
        )  # fmt: skip
        server = QuietServer(config)
        self._task = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                self._server = server
                return
            if self._task.done():
                break
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the demo backend did not start on port {self.port}")

    async def stop(self) -> None:
        """Stop serving: connections are refused, as when the process dies."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._task, 10)
        self._server = None
        self._task = None


class Platform:
    """Everything the demo watches."""

    def __init__(
        self,
        clock: Clock,
        *,
        heartbeat: Callable[[], Awaitable[Any]] | None = None,
        embedded_redis: bool = False,
        soulwatch_url: str | None = None,
    ):
        self.clock = clock
        self.faults = Faults()
        self._tmp = tempfile.TemporaryDirectory(prefix="soulwatch-demo-redis-")
        self.redis = DemoRedis(Path(self._tmp.name), embedded=embedded_redis)
        self.backend: Backend | None = None
        self._heartbeat = heartbeat
        self._client: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.runner: AgentRunner | None = None
        self.traffic: Traffic | None = None
        self._soulwatch_url = soulwatch_url
        self.browsers: BrowserTraffic | None = None

    async def start(self) -> None:
        """Start Redis, the backend, the workers and the traffic."""
        await self.redis.start()
        self._client = aioredis.Redis.from_url(self.redis.url, decode_responses=True)
        self.backend = Backend(self.faults, self.redis.url, soulwatch_url=self._soulwatch_url)
        await self.backend.start()
        self.runner = AgentRunner(self._client, self.clock, self.faults)
        poller = RedditPoller(self._client, self.clock, self.faults, heartbeat=self._heartbeat)
        self.traffic = Traffic(self.backend.url, rate=20.0, concurrency=64)
        stop = self._should_stop
        self._tasks = [
            asyncio.create_task(_resilient(self.runner.tick, self.clock, 60.0, stop)),
            asyncio.create_task(_resilient(poller.tick, self.clock, 300.0, stop)),
            asyncio.create_task(self.traffic.run(stop)),
        ]
        if self._soulwatch_url:
            self.browsers = BrowserTraffic(self._soulwatch_url, self.backend.url, self.faults)
            self._tasks.append(asyncio.create_task(self.browsers.run(stop)))

    def _should_stop(self) -> bool:
        return self._stopping

    @property
    def redis_client(self) -> Any:
        """The platform's own Redis client."""
        return self._client

    async def stop(self) -> None:
        """Stop everything started, in reverse order."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.backend is not None:
            await self.backend.stop()
        if self._client is not None:
            await self._client.aclose()
        await self.redis.stop()
        self._tmp.cleanup()


async def _resilient(
    tick: Callable[[], Awaitable[None]], clock: Clock, every: float, stop: Callable[[], bool]
) -> None:
    """Tick until stopped; a tick that fails (Redis down) is retried at the next one."""
    while not stop():
        with contextlib.suppress(OSError, aioredis.RedisError):
            await tick()
        await clock.sleep(every)
