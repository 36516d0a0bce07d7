"""The :class:`Prober` protocol and :class:`ProbeSource`, which runs one probe on a schedule.

A probe's samples carry ``job`` and ``instance`` (the target) like a Prometheus
scrape of blackbox_exporter; ``probe_success`` and ``probe_duration_seconds``
are always written. A metric a probe stops reporting (the certificate expiry
of an HTTPS endpoint that no longer answers) gets a staleness marker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from soulwatch.clock import Clock
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.storage import Storage
from soulwatch.tsdb.writer import SeriesWriter

Timer = Callable[[], float]


@dataclass
class ProbeResult:
    """What one probe run found: success, an error text, and extra samples.

    ``metrics`` are ``(name, extra_labels, value)``.
    """

    success: bool = False
    error: str = ""
    metrics: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, name: str, value: float, **labels: str) -> None:
        """Record one sample."""
        self.metrics.append((name, labels, float(value)))


@runtime_checkable
class Prober(Protocol):
    """Probes one target. Expected failures are reported in the result, not raised.

    ``result`` is filled as the probe goes, so what was measured before a
    timeout is still written.
    """

    async def probe(self, target: str, result: ProbeResult) -> None:
        """Probe ``target`` and fill ``result``."""
        ...

    async def close(self) -> None:
        """Release clients."""
        ...


class ProbeSource:
    """A :class:`~soulwatch.sources.base.Source` running a prober against one target."""

    def __init__(
        self,
        prober: Prober,
        target: str,
        labels: Labels,
        *,
        interval: float,
        timeout: float,
        storage: Storage,
        clock: Clock,
        timer: Timer = time.perf_counter,
        write_lock: threading.Lock | None = None,
        runner: BlockingRunner = run_in_thread,
    ) -> None:
        self.prober = prober
        self.target = target
        self.labels = labels
        #: ``job/instance``
        self.key = f"{labels.get('job')}/{labels.get('instance')}"
        #: seconds between probes
        self.interval = interval
        self._timeout = timeout
        self._storage = storage
        self._clock = clock
        self._timer = timer
        #: the outcome of the last probe
        self.status = SourceStatus()
        self._writer = SeriesWriter(storage, self.key, lock=write_lock)
        self._run = runner

    async def run_once(self, t: float) -> None:
        """Probe once, bounded by the timeout, and write the samples."""
        t_ms = int(self._clock.time() * 1000)
        start = self._timer()
        result = ProbeResult()
        try:
            async with asyncio.timeout(self._timeout):
                await self.prober.probe(self.target, result)
        except TimeoutError:
            result.success = False
            result.error = f"probe timed out after {self._timeout:g}s"
        duration = self._timer() - start
        samples: dict[Labels, float] = {}
        for name, extra, value in result.metrics:
            samples[self.labels.with_(extra, __name__=name)] = value
        samples[self.labels.with_(__name__="probe_success")] = 1.0 if result.success else 0.0
        samples[self.labels.with_(__name__="probe_duration_seconds")] = duration
        await self._run(self._writer.write, t_ms, samples)
        status = self.status
        status.health = Health.UP if result.success else Health.DOWN
        status.last_error = "" if result.success else (result.error or "probe failed")
        status.last_run = t_ms / 1000
        status.duration = duration
        status.runs += 1

    async def close(self) -> None:
        """Mark the probe's series stale and release the prober."""
        await self._run(self._writer.close, int(self._clock.time() * 1000))
        await self.prober.close()
