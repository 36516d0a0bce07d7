"""Applying a new probe config: unchanged probes run on, removed ones go stale, new ones start."""

from __future__ import annotations

import itertools

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import ConfigError
from soulwatch.sources.probes import ProbeConfig, ProbeManager
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import is_stale_nan
from tests.helpers import Recorder
from tests.sources.support import only


def http(name: str, url: str) -> ProbeConfig:
    return ProbeConfig.model_validate(
        {"job_name": name, "prober": "http", "targets": [url], "interval": "15s", "timeout": "2s"}
    )


async def ticks(clock: SimulatedClock, manager: ProbeManager, n: int) -> None:
    for _ in range(n):
        await clock.advance(15)
        await manager.settled()


async def test_probe_reload_keeps_unchanged_probes_running(
    clock: SimulatedClock, recorder: Recorder
) -> None:
    storage = MemoryStorage()
    health = http("health", f"{recorder.url}/health")
    old = http("old", f"{recorder.url}/old")
    manager = ProbeManager([health, old], storage, clock=clock, env={})
    manager.start()
    try:
        await ticks(clock, manager, 2)
        with pytest.raises(ConfigError, match="PROBE_URL"):
            manager.prepare(
                [
                    health,
                    ProbeConfig.model_validate(
                        {"job_name": "x", "prober": "http", "url_env": "PROBE_URL"}
                    ),
                ]
            )
        reload = manager.prepare([health, http("new", f"{recorder.url}/new")])
        assert (reload.kept, reload.added, reload.removed) == (["health"], ["new"], ["old"])
        await manager.apply(reload)
        assert is_stale_nan(only(storage, "probe_success", job="old")[-1][1])
        await ticks(clock, manager, 2)
        kept = only(storage, "probe_success", job="health")
        assert [v for _, v in kept] == [1.0] * 4
        times = [t for t, _ in kept]
        assert all(b - a == 15_000 for a, b in itertools.pairwise(times))
        assert [v for _, v in only(storage, "probe_success", job="new")] == [1.0] * 2
        assert sorted(manager.statuses()) == [
            f"health/{recorder.url}/health",
            f"new/{recorder.url}/new",
        ]
    finally:
        await manager.stop()
