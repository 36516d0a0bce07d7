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
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.sources.collectors.base import CollectedSample, Collector
from soulwatch.tsdb.model import STALE_NAN, Labels
from soulwatch.tsdb.storage import Storage


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
    ) -> None:
        self._collector = collector
        self._storage = storage
        self._interval = interval
        self._timeout = timeout if timeout is not None else interval
        self._status = SourceStatus()
        self._target = Labels.of(job=collector.name, instance="collector")
        self._target_labels = self._target.to_dict()
        self._clock = clock or SystemClock()
        self._previous: set[Labels] = set()

    @property
    def key(self) -> str:
        """``collector/<name>``."""
        return f"collector/{self._collector.name}"

    @property
    def interval(self) -> float:
        """Seconds between cycles."""
        return self._interval

    @property
    def status(self) -> SourceStatus:
        """The outcome of the last cycle."""
        return self._status

    async def run_once(self, t: float) -> None:
        """Collect once for the scheduled time ``t``; a failure marks the collector down."""
        started = time.perf_counter()
        samples: list[CollectedSample] | None = None
        error = ""
        try:
            samples = await asyncio.wait_for(self._collector.collect(), self._timeout)
        except TimeoutError:
            error = f"collection timed out after {self._timeout:g}s"
        except Exception as exc:  # any failure of the watched system is data, not a crash
            error = f"{type(exc).__name__}: {exc}"
        duration = time.perf_counter() - started
        await asyncio.to_thread(self._store, int(t * 1000), samples, duration)
        self._status.health = Health.UP if samples is not None else Health.DOWN
        self._status.last_error = error
        self._status.last_run = t
        self._status.duration = duration
        self._status.runs += 1

    def _store(self, t_ms: int, samples: list[CollectedSample] | None, duration: float) -> None:
        app = self._storage.appender()
        current: set[Labels] = set()
        for labels, value in samples or ():
            full = labels.with_(self._target_labels)
            current.add(full)
            app.append(full, t_ms, value)
        for gone in self._previous - current:
            app.append(gone, t_ms, STALE_NAN)
        self._previous = current
        app.append(self._target.with_(__name__="up"), t_ms, 1.0 if samples is not None else 0.0)
        app.append(self._target.with_(__name__="scrape_duration_seconds"), t_ms, duration)
        app.commit()

    async def close(self) -> None:
        """Mark every series stale; close the collector's clients if it has any."""
        if self._previous:
            now_ms = int(self._clock.time() * 1000)
            await asyncio.to_thread(self._store_stale, now_ms)
        closer = getattr(self._collector, "aclose", None)
        if closer is not None:
            await closer()

    def _store_stale(self, t_ms: int) -> None:
        app = self._storage.appender()
        for labels in self._previous:
            app.append(labels, t_ms, STALE_NAN)
        app.commit()
        self._previous = set()
