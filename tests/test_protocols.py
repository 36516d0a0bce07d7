"""The extension points are a reviewed decision: this test locks them, and the
built-in implementations satisfy them without adapters."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Protocol

import httpx

from soulwatch import protocols
from soulwatch.alerting.notifiers.webhook import WebhookNotifier
from soulwatch.clock import SimulatedClock, SystemClock
from soulwatch.promql.engine import Engine
from soulwatch.sources.collectors.config import E2BCollectorConfig
from soulwatch.sources.collectors.e2b import E2BCollector
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.memory import MemoryStorage


def test_the_extension_points_are_locked() -> None:
    assert protocols.__all__ == sorted(protocols.__all__)
    assert protocols.__all__ == [
        "Appender",
        "Clock",
        "Collector",
        "Notifier",
        "QueryEngine",
        "Source",
        "Storage",
    ]
    for name in protocols.__all__:
        cls = getattr(protocols, name)
        assert Protocol in cls.__mro__, name
        assert inspect.getdoc(cls), name


async def test_the_built_in_parts_are_what_the_protocols_say(tmp_path: Path) -> None:
    clock = SimulatedClock()
    tsdb = TSDB(StorageConfig(path=tmp_path / "tsdb"), clock=clock)
    try:
        for storage in (tsdb, MemoryStorage()):
            assert isinstance(storage, protocols.Storage)
            assert isinstance(storage.appender(source="job/instance"), protocols.Appender)
        engine = Engine(tsdb, clock=clock)
        assert isinstance(engine, protocols.QueryEngine)
        assert engine.lookback_delta_ms == 300_000
        collector = E2BCollector(E2BCollectorConfig(api_key="k"))
        assert isinstance(collector, protocols.Collector)
        assert isinstance(CollectorSource(collector, tsdb, interval=60), protocols.Source)
        async with httpx.AsyncClient() as client:
            notifier = WebhookNotifier("http://127.0.0.1:9/hook", client=client, clock=clock)
            assert isinstance(notifier, protocols.Notifier)
        for c in (SystemClock(), clock):
            assert isinstance(c, protocols.Clock)
        await collector.aclose()
    finally:
        tsdb.close()
