"""Building a monitor: a start that fails half-way closes what it opened."""

from __future__ import annotations

from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError, SoulwatchError
from soulwatch.service import Monitor


def _config(tmp_path: Path, extra: str = "") -> str:
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        "heartbeats:\n  checks:\n    - {name: poller, period: 1m, grace: 30s}\n" + extra
    )


async def test_a_start_that_fails_half_way_closes_what_it_opened(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    # Accepted by the config parser, refused when the collector is built.
    broken = parse_config(_config(tmp_path, "collectors: {soulcaster: {}}\n"), environ={})
    monitor = Monitor(broken, clock=clock)
    with pytest.raises(ConfigError, match=r"collectors\.soulcaster needs redis_url"):
        await monitor.start()
    # Stopping the monitor that never started is harmless.
    await monitor.stop()
    assert monitor.health()["status"] == "degraded"

    # The data directory was released: the fixed config starts on it at once.
    fixed = Monitor(parse_config(_config(tmp_path), environ={}), clock=clock)
    await fixed.start()
    try:
        assert fixed.health()["status"] == "ok"
        assert [c.name for c in fixed.heartbeats.checks()] == ["poller"]
    finally:
        await fixed.stop()


async def test_a_monitor_stops_once_and_starts_once(tmp_path: Path, clock: SimulatedClock) -> None:
    monitor = Monitor(parse_config(_config(tmp_path), environ={}), clock=clock)
    await monitor.start()
    try:
        with pytest.raises(SoulwatchError, match="already been started"):
            await monitor.start()
    finally:
        await monitor.stop()
    await monitor.stop()  # a second stop does nothing
    # Everything is closed: the same data directory opens again.
    again = Monitor(parse_config(_config(tmp_path), environ={}), clock=clock)
    await again.start()
    await again.stop()
