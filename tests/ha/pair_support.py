"""Two real ``soulwatch run`` processes coordinated through a real redis-server.

Both watch the same fault target (:class:`~tests.alerting.run_support.FaultTarget`)
with the same rules and routing, and page the same recording webhook; each has
its own data directory, port and instance name. Timing is short so failover is
seen in seconds: a 3 s lease, 1 s scrape and evaluation.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.alerting.run_support import (
    FaultTarget,
    MonitorProcess,
    Timing,
    pages,
    receiver,
    write_config,
)
from tests.helpers import Recorder, RedisServer, wait_until

LEASE_TTL = 3.0
INTERVAL = 1.0
#: The token that may write silences on either instance.
TOKEN = "ha-pair-test-token-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def ha_config(
    directory: Path,
    *,
    name: str,
    target: str,
    hook: str,
    redis_url: str,
    timing: Timing,
) -> Path:
    """Write the config of instance ``name`` (its own data dir) into ``directory/name``."""
    home = directory / name
    home.mkdir()
    config = write_config(home, target, hook, data_dir=home / "data", timing=timing)
    config.write_text(
        config.read_text()
        + f"ha:\n  redis_url: {redis_url}\n  lease_ttl: {LEASE_TTL:g}s\n  instance: {name}\n"
        + f"auth:\n  tokens:\n    - {{name: oncall, token: {TOKEN}, scopes: [silences]}}\n"
    )
    return config


def ha_status(proc: MonitorProcess) -> dict[str, Any]:
    """``/api/v1/status/ha`` of ``proc``."""
    data: dict[str, Any] = proc.get("/api/v1/status/ha").json()["data"]
    return data


@dataclass
class Pair:
    """Two monitors; ``a`` was started first (it leads once the pair settles)."""

    a: MonitorProcess
    b: MonitorProcess

    def modes(self) -> tuple[str, str]:
        """Each one's mode (``leader``, ``standby``, ``solo``); ``dead`` when not running."""
        return tuple(  # type: ignore[return-value]
            ha_status(p)["mode"] if p.proc is not None else "dead" for p in (self.a, self.b)
        )

    def settled(self, timeout: float = 15.0) -> None:
        """Wait until exactly one leads and the other stands by."""
        wait_until(
            lambda: sorted(self.modes()) == ["leader", "standby"],
            timeout=timeout,
            interval=0.1,
            what="one leader and one standby",
        )


@dataclass
class World:
    """What the pair watches and talks to: Redis, the fault target, the receiver."""

    tmp: Path
    redis: RedisServer
    target: FaultTarget
    hook: Recorder


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A real redis-server, a fault target and a recording receiver, stopped after the test."""
    with RedisServer() as redis, FaultTarget() as target, receiver() as hook:
        yield World(tmp_path, redis, target, hook)


@contextlib.contextmanager
def pair(w: World, timing: Timing) -> Iterator[Pair]:
    """Start ``a``, wait for it to lead, then ``b``; stop both on exit."""
    tmp, target, hook, redis_url = w.tmp, w.target.address, w.hook.url, w.redis.url
    a = MonitorProcess(
        ha_config(tmp, name="a", target=target, hook=hook, redis_url=redis_url, timing=timing),
        log_path=tmp / "a.log",
    )
    b = MonitorProcess(
        ha_config(tmp, name="b", target=target, hook=hook, redis_url=redis_url, timing=timing),
        log_path=tmp / "b.log",
    )
    try:
        a.start()
        wait_until(lambda: ha_status(a)["mode"] == "leader", timeout=10, what="a leads")
        b.start()
        both = Pair(a, b)
        both.settled()
        yield both
    finally:
        a.stop()
        b.stop()


def firing_pages(hook: Recorder) -> list[dict[str, Any]]:
    """Bodies of the firing pages received."""
    return [p[3] for p in pages(hook) if p[0] == "firing"]


def resolved_pages(hook: Recorder) -> list[dict[str, Any]]:
    """Bodies of the resolved pages received."""
    return [p[3] for p in pages(hook) if p[0] == "resolved"]


def quiet_for(seconds: float) -> None:
    """Let ``seconds`` pass (long enough for a second page to arrive if one were coming)."""
    time.sleep(seconds)
