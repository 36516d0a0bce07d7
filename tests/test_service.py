"""The monitor wired in-process on a simulated clock: loops, dead man's switch, reload, stop."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError
from soulwatch.service import Monitor
from soulwatch.sources.heartbeats import Ping, PingKind
from soulwatch.tsdb.model import Matcher
from tests.helpers import Recorder

UUID = "0b4a4e5c-1f3e-4d3a-9a63-0e6c3f7b1a11"


def _config(tmp_path: Path, deadman: str, rules: str = "rules.yml") -> str:
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "global: {evaluation_interval: 10s}\n"
        f"rule_files: [{tmp_path / rules}]\n"
        f"heartbeats:\n  checks:\n    - {{name: poller, uuid: {UUID}, period: 1m, grace: 30s}}\n"
        f"self_monitoring: {{interval: 1m, deadman_url: '{deadman}'}}\n"
    )


def _latest(monitor: Monitor, name: str) -> float:
    series = list(monitor.storage.select([Matcher.equal("__name__", name)], 0, 2**62))
    assert len(series) == 1
    return series[0].values[-1]


async def test_monitor_runs_its_loops_on_the_clock(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: hb\n    rules:\n"
        "      - record: heartbeat_up:min\n        expr: min(heartbeat_up)\n"
    )
    config = parse_config(_config(tmp_path, f"{recorder.url}/ping/deadman"), environ={})
    monitor = Monitor(config, clock=clock)
    await monitor.start()
    try:
        assert monitor.heartbeats.by_name("poller") is not None
        monitor.heartbeats.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
        await clock.advance(20)
        await _eventually(lambda: _latest(monitor, "heartbeat_up") == 1.0)
        # Past period + grace: the heartbeat loop marks it down and writes 0.
        for _ in range(10):
            await clock.advance(10)
        await _eventually(lambda: _latest(monitor, "heartbeat_up") == 0.0)
        # The recording rule runs on the same clock over the same storage.
        for _ in range(6):
            await clock.advance(10)
            with contextlib.suppress(AssertionError):
                await _eventually(lambda: _latest(monitor, "heartbeat_up:min") == 0.0, 2.0)
                break
        assert _latest(monitor, "heartbeat_up:min") == 0.0
        # The dead man's switch was pinged at start and every interval.
        assert len(recorder.received("/ping/deadman")) >= 2
        assert monitor.health()["status"] == "ok"
    finally:
        await monitor.stop()
    assert monitor.health()["status"] == "degraded"


async def test_a_bad_reload_keeps_the_old_config(
    tmp_path: Path, clock: SimulatedClock, recorder: Recorder
) -> None:
    (tmp_path / "rules.yml").write_text("groups: []\n")
    (tmp_path / "bad.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x)\n"
    )
    config = parse_config(_config(tmp_path, f"{recorder.url}/d"), environ={})
    monitor = Monitor(config, clock=clock)
    await monitor.start()
    try:
        bad = parse_config(_config(tmp_path, f"{recorder.url}/d", rules="bad.yml"), environ={})
        with pytest.raises(ConfigError, match=r"bad\.yml"):
            await monitor.reload(bad)
        assert monitor.config is config
        assert _gauge(monitor, "soulwatch_config_last_reload_successful") == 0.0
        good = parse_config(
            _config(tmp_path, f"{recorder.url}/d").replace("poller", "backup"), environ={}
        )
        await monitor.reload(good)
        assert [c.name for c in monitor.heartbeats.checks()] == ["backup"]
        assert _gauge(monitor, "soulwatch_config_last_reload_successful") == 1.0
    finally:
        await monitor.stop()


async def _eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    # Storage work runs in worker threads; give them real time to finish (bounded).
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _gauge(monitor: Monitor, name: str) -> float:
    value = monitor.registry.get_sample_value(name)
    assert value is not None
    assert not math.isnan(value)
    return value


async def test_receivers_show_their_last_delivery_error(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from tests.helpers import Reply

    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: AlwaysOn\n        expr: vector(1)\n"
    )
    with Recorder(default=Reply(status=500, body=b"boom")) as hook:
        text = (
            f"data_dir: {tmp_path / 'data'}\n"
            "global: {evaluation_interval: 10s}\n"
            f"rule_files: [{tmp_path / 'rules.yml'}]\n"
            "alerting:\n  route: {receiver: hook, group_wait: 0s}\n"
            f"  receivers:\n    - name: hook\n      webhook_configs: [{{url: '{hook.url}/x'}}]\n"
        )
        monitor = Monitor(parse_config(text, environ={}), clock=clock)
        await monitor.start()
        try:
            assert monitor.ctx.receivers is not None
            view = monitor.ctx.receivers

            def failing() -> bool:
                [receiver] = view.receivers()
                [integration] = receiver["integrations"]
                return bool(integration["lastError"]) and integration["failing"]

            for _ in range(10):
                await clock.advance(10)
                with contextlib.suppress(AssertionError):
                    await _eventually(failing, 2.0)
                    break
            assert failing()
            assert hook.received("/x")
            [receiver] = view.receivers()
            assert receiver["name"] == "hook"
            assert "500" in receiver["integrations"][0]["lastError"]
        finally:
            await monitor.stop()
