"""Runs a :class:`Collector` as a scheduled :class:`~soulwatch.sources.base.Source`.

Collected samples are written like a scrape's: every series gets a ``job``
label (the collector's name) and ``instance="collector"``, ``up`` says whether
the cycle succeeded, and series that vanish — or all of them, when the
collector fails — get staleness markers so queries stop returning them at once.
"""

from __future__ import annotations

import asyncio
import time

from soulwatch.clock import Clock, SystemClock
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.sources.collectors.base import CollectedSample, Collector
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage
from soulwatch.tsdb.writer import SeriesWriter


class CollectorSource:
    """A collector on a schedule, with a timeout, writing to storage."""

    def __init__(
        self,
        collector: Collector,
        storage: Storage,
        *,
        interval: float,
        timeout: float | None = None,
        clock: Clock | None = None,
        runner: BlockingRunner = run_in_thread,
    ) -> None:
        self._collector = collector
        #: ``collector/<name>``
        self.key = f"collector/{collector.name}"
        #: seconds between cycles
        self.interval = interval
        self._timeout = timeout if timeout is not None else interval
        self._clock = clock or SystemClock()
        #: the outcome of the last cycle
        self.status = SourceStatus()
        self._target = Labels.of(job=collector.name, instance="collector")
        self._target_labels = self._target.to_dict()
        self._writer = SeriesWriter(storage, self.key)
        self._run = runner

    async def run_once(self, t: float) -> None:
        """Collect once for the scheduled time ``t``; a failure marks the collector down."""
        started = time.perf_counter()
        collected: list[CollectedSample] | None = None
        error = ""
        try:
            collected = await asyncio.wait_for(self._collector.collect(), self._timeout)
        except TimeoutError:
            error = f"collection timed out after {self._timeout:g}s"
        except Exception as exc:  # any failure of the watched system is data, not a crash
            error = f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        samples = {labels.with_(self._target_labels): v for labels, v in collected or ()}
        samples[self._target.with_(__name__="up")] = 1.0 if collected is not None else 0.0
        samples[self._target.with_(__name__="scrape_duration_seconds")] = duration
        await self._run(self._writer.write, int(t * 1000), samples)
        self.status.health = Health.UP if collected is not None else Health.DOWN
        self.status.last_error = error
        self.status.last_run = t
        self.status.duration = duration
        self.status.runs += 1

    async def close(self) -> None:
        """Mark every series stale; close the collector's clients if it has any."""
        await self._run(self._writer.close, int(self._clock.time() * 1000))
        await self._collector.aclose()
