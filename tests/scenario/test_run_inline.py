"""Monitor(run_blocking=run_inline): every loop step happens at the instant it is due."""

from __future__ import annotations

from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.service import Monitor, run_inline
from soulwatch.sources.heartbeats import Ping, PingKind
from soulwatch.tsdb.model import Matcher


async def test_heartbeat_samples_land_on_the_ticks_without_waiting(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    config = parse_config(
        f"data_dir: {tmp_path}\nglobal: {{evaluation_interval: 10s}}\n"
        "heartbeats:\n  checks:\n    - {name: poller, period: 1m, grace: 30s}\n",
        environ={},
    )
    monitor = Monitor(config, clock=clock, run_blocking=run_inline)
    await monitor.start()
    try:
        check = monitor.heartbeats.by_name("poller")
        assert check is not None
        monitor.heartbeats.ping_uuid(check.uuid, Ping(clock.time(), PingKind.SUCCESS))
        start = clock.time()
        # No polling: right after each advance the evaluation at that tick is stored.
        await clock.advance(100)
        series = monitor.storage.select([Matcher.equal("__name__", "heartbeat_up")], 0, 2**62)
        (up,) = list(series)
        assert [round(t / 1000 - start) for t in up.timestamps] == [
            0,
            10,
            20,
            30,
            40,
            50,
            60,
            70,
            80,
            90,
            100,
        ]
        # Down after period + grace (90s): the ticks from 90s on say 0.
        assert list(up.values) == [1.0] * 9 + [0.0] * 2
    finally:
        await monitor.stop()
