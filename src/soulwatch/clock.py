"""Injected time.

No soulwatch component reads the wall clock directly: each takes a :class:`Clock`.
:class:`SystemClock` is the real one; :class:`SimulatedClock` lets tests and
scenario files run the whole monitor through hours of time without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of time and a way to wait."""

    def time(self) -> float:
        """Wall-clock time in seconds since the Unix epoch."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in seconds, for measuring durations."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch."""
        return time.time()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Real time, running ``factor`` times faster: the demo's fast mode.

    ``time()`` starts at the real time and advances ``factor`` seconds per real
    second; ``sleep(s)`` waits ``s / factor`` real seconds. Every component on
    this clock sees the same accelerated timeline, so rules keep their real
    ``for`` durations and windows while alerts show within seconds.
    """

    def __init__(self, factor: float, *, start: float | None = None) -> None:
        if factor <= 0:
            raise ValueError("the scale factor must be positive")
        self.factor = float(factor)
        self._real_start = time.monotonic()
        self._start = time.time() if start is None else float(start)

    def time(self) -> float:
        """Accelerated wall-clock seconds since the epoch."""
        return self._start + (time.monotonic() - self._real_start) * self.factor

    def monotonic(self) -> float:
        """Accelerated seconds since the clock was created."""
        return (time.monotonic() - self._real_start) * self.factor

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of accelerated time."""
        await asyncio.sleep(max(0.0, seconds) / self.factor)


class SimulatedClock:
    """A clock that only moves when told to.

    ``sleep`` parks the caller until :meth:`advance` moves time past its
    deadline. Sleepers wake in deadline order, and time stops at each deadline
    while the woken tasks run, so a loop that sleeps and acts sees every tick
    exactly as it would in real time.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._start = float(start)
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        """The simulated wall-clock time."""
        return self._now

    def monotonic(self) -> float:
        """Seconds since the clock was created (never goes back)."""
        return self._now - self._start

    async def sleep(self, seconds: float) -> None:
        """Park until the simulated time reaches now + ``seconds``."""
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float, *, settle: int = 20) -> None:
        """Move time forward by ``seconds``, waking sleepers at their deadlines.

        After each wake-up the event loop gets ``settle`` turns so that woken
        tasks run (and may sleep again) before time moves on.
        """
        if seconds < 0:
            raise ValueError("a clock cannot go back")
        target = self._now + seconds
        await self._settle(settle)
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await self._settle(settle)
        self._now = target
        await self._settle(settle)

    def set_time(self, t: float) -> None:
        """Jump to ``t`` without waking anyone (for synchronous tests)."""
        if t < self._now:
            raise ValueError("a clock cannot go back")
        self._now = float(t)

    @staticmethod
    async def _settle(turns: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
