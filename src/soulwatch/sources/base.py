"""What every source of samples shares: the :class:`Source` protocol, its status, the scheduler.

A source is anything run on a schedule that writes samples to storage: a
scrape target, a probe, a collector. The :class:`Scheduler` runs one loop per
source on the injected :class:`~soulwatch.clock.Clock`, each at its own
deterministic offset inside its interval, so that a slow or hung source never
delays another.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol, runtime_checkable

from soulwatch.clock import Clock


class Health(Enum):
    """The health of a source, as Prometheus shows a target's."""

    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


@dataclass
class SourceStatus:
    """What the API and UI show about one source.

    ``last_run`` is the wall-clock time (seconds) the last run started,
    ``duration`` how long it took (seconds), ``last_error`` the reason of the
    last failure (``""`` when the last run succeeded).
    """

    health: Health = Health.UNKNOWN
    last_error: str = ""
    last_run: float | None = None
    duration: float | None = None
    runs: int = 0


@runtime_checkable
class Source(Protocol):
    """A thing run on a schedule that writes samples to storage."""

    @property
    def key(self) -> str:
        """A stable identity (e.g. ``job/instance``); it also seeds the offset."""
        ...

    @property
    def interval(self) -> float:
        """Seconds between runs."""
        ...

    @property
    def status(self) -> SourceStatus:
        """The outcome of the last run."""
        ...

    async def run_once(self, t: float) -> None:
        """Run once for the scheduled wall-clock time ``t`` (seconds).

        It must bound its own duration (timeout) and record failures on
        :attr:`status` instead of raising.
        """
        ...

    async def close(self) -> None:
        """Called once when the scheduler stops the source (write staleness, free clients)."""
        ...


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash (what Prometheus hashes target labels with)."""
    h = 0xCBF29CE484222325
    for byte in data:
        h ^= byte
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def phase(key: str, interval: float, seed: int = 0) -> float:
    """Where in each interval (seconds after a multiple of it) the source ``key`` runs."""
    period_ns = max(1, round(interval * 1e9))
    return ((fnv1a_64(key.encode()) ^ seed) % period_ns) / 1e9


def first_run_delay(key: str, interval: float, now: float, seed: int = 0) -> float:
    """Seconds from ``now`` to the source's first run.

    Like Prometheus, each source runs at a fixed offset inside its interval,
    derived from a hash of its identity: runs of many targets spread evenly,
    and a given target always runs at the same phase.
    """
    period_ns = max(1, round(interval * 1e9))
    now_ns = round(now * 1e9)
    base = period_ns - now_ns % period_ns
    offset = (fnv1a_64(key.encode()) ^ seed) % period_ns
    nxt = base + offset
    if nxt > period_ns:
        nxt -= period_ns
    return nxt / 1e9


class Scheduler:
    """One loop per source on the injected clock.

    Each loop waits for its offset, then runs the source every ``interval``
    seconds. A run that overruns skips the ticks it missed (as a Go ticker
    does) rather than running back to back.
    """

    def __init__(
        self, clock: Clock, sources: Iterable[Source] = (), *, seed: int = 0, phased: bool = True
    ) -> None:
        self._clock = clock
        self._seed = seed
        # Not phased: every source runs one interval after it starts, then every interval.
        self._phased = phased
        self._sources: dict[str, Source] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running = False
        self._busy: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        for source in sources:
            self.add(source)

    @property
    def sources(self) -> list[Source]:
        """The scheduled sources."""
        return list(self._sources.values())

    def add(self, source: Source) -> None:
        """Schedule ``source`` (started at once if the scheduler runs)."""
        if source.key in self._sources:
            raise ValueError(f"duplicate source {source.key!r}")
        if not source.interval > 0:
            raise ValueError(f"source {source.key!r}: the interval must be positive")
        self._sources[source.key] = source
        if self._running:
            self._start_one(source)

    async def replace(self, sources: Iterable[Source]) -> None:
        """Stop and close every source, then schedule ``sources`` (started if running)."""
        running = self._running
        await self.stop()
        self._sources = {}
        for source in sources:
            self.add(source)
        if running:
            self.start()

    def start(self) -> None:
        """Start every loop (inside a running event loop)."""
        self._running = True
        for source in self._sources.values():
            if source.key not in self._tasks:
                self._start_one(source)

    def _start_one(self, source: Source) -> None:
        self._tasks[source.key] = asyncio.get_running_loop().create_task(
            self._loop(source), name=f"source:{source.key}"
        )

    async def stop(self) -> None:
        """Cancel every loop and close every source."""
        self._running = False
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._busy.clear()
        self._idle.set()
        for source in self._sources.values():
            await source.close()

    async def settled(self, timeout: float = 30.0) -> None:
        """Wait (real time, bounded) until no source is running: for tests and shutdown."""
        async with asyncio.timeout(timeout):
            await asyncio.sleep(0)
            await self._idle.wait()

    async def _loop(self, source: Source) -> None:
        interval = source.interval
        now = self._clock.time()
        delay = first_run_delay(source.key, interval, now, self._seed) if self._phased else interval
        next_t = now + delay
        while True:
            delay = next_t - self._clock.time()
            if delay > 0:
                await self._clock.sleep(delay)
            self._busy.add(source.key)
            self._idle.clear()
            try:
                await source.run_once(next_t)
            except Exception as exc:  # a source's bug must not end its loop; show it instead
                status = source.status
                status.health = Health.DOWN
                status.last_error = f"internal error: {exc!r}"
            finally:
                self._busy.discard(source.key)
                if not self._busy:
                    self._idle.set()
            next_t += interval
            now = self._clock.time()
            if next_t <= now:
                next_t += math.ceil((now - next_t) / interval + 1e-9) * interval
