"""The scheduler: deterministic offsets, one loop per source, overruns skip ticks."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from soulwatch.clock import SimulatedClock
from soulwatch.sources.base import Health, Scheduler, SourceStatus, first_run_delay


@dataclass
class FakeSource:
    """A source that records when it ran; it may take (simulated) time or raise."""

    key: str
    interval: float
    clock: SimulatedClock
    takes: float = 0.0
    fail: bool = False
    runs: list[float] = field(default_factory=list)
    status: SourceStatus = field(default_factory=SourceStatus)
    closed: bool = False

    async def run_once(self, t: float) -> None:
        self.runs.append(self.clock.time())
        if self.fail:
            raise RuntimeError("boom")
        if self.takes:
            await self.clock.sleep(self.takes)
        self.status.runs += 1

    async def close(self) -> None:
        self.closed = True


async def test_each_source_runs_at_its_offset_every_interval(clock: SimulatedClock) -> None:
    start = clock.time()
    a = FakeSource("job/a", 10, clock)
    b = FakeSource("job/b", 30, clock)
    scheduler = Scheduler(clock, [a, b])
    scheduler.start()
    await clock.advance(65)
    await scheduler.stop()
    first_a = start + first_run_delay("job/a", 10, start)
    first_b = start + first_run_delay("job/b", 30, start)
    assert a.runs == [first_a + 10 * i for i in range(len(a.runs))]
    assert len(a.runs) in (6, 7)
    assert b.runs[:2] == [first_b, first_b + 30]
    assert a.closed
    assert b.closed


async def test_an_overrunning_source_skips_missed_ticks_and_delays_no_other(
    clock: SimulatedClock,
) -> None:
    slow = FakeSource("slow", 10, clock, takes=25)
    fast = FakeSource("fast", 10, clock)
    scheduler = Scheduler(clock, [slow, fast])
    scheduler.start()
    await clock.advance(60)
    await scheduler.stop()
    gaps = {round(b - a, 6) for a, b in zip(slow.runs, slow.runs[1:], strict=False)}
    assert gaps == {30.0}, "runs stay on the interval grid, missed ticks are skipped"
    assert len(fast.runs) == 6


async def test_a_source_that_raises_is_shown_down_and_keeps_its_schedule(
    clock: SimulatedClock,
) -> None:
    broken = FakeSource("broken", 10, clock, fail=True)
    scheduler = Scheduler(clock, [broken])
    scheduler.start()
    await clock.advance(30)
    await scheduler.stop()
    assert len(broken.runs) == 3
    assert broken.status.health is Health.DOWN
    assert broken.status.last_error == "internal error: RuntimeError('boom')"


async def test_settled_waits_for_running_sources(clock: SimulatedClock) -> None:
    done = asyncio.Event()

    class Waits(FakeSource):
        async def run_once(self, t: float) -> None:
            await asyncio.sleep(0.05)  # real I/O the simulated clock does not see
            done.set()

    source = Waits("w", 10, clock)
    scheduler = Scheduler(clock, [source])
    scheduler.start()
    await clock.advance(10)
    assert not done.is_set()
    await scheduler.settled()
    assert done.is_set()
    await scheduler.stop()


async def test_replacing_the_sources_closes_the_old_and_runs_the_new(
    clock: SimulatedClock,
) -> None:
    old = FakeSource("old", 10, clock)
    scheduler = Scheduler(clock, [old])
    scheduler.start()
    await clock.advance(20)
    new = FakeSource("new", 10, clock)
    await scheduler.replace([new])
    ran_before = len(old.runs)
    await clock.advance(30)
    await scheduler.stop()
    assert old.closed
    assert len(old.runs) == ran_before  # stopped at the replacement
    assert len(new.runs) >= 2  # started at once, the scheduler being running
    assert [s.key for s in scheduler.sources] == ["new"]


async def test_an_unphased_scheduler_runs_on_the_ticks_of_its_start(clock: SimulatedClock) -> None:
    start = clock.time()
    source = FakeSource("monitor/heartbeats", 10, clock)
    scheduler = Scheduler(clock, [source], phased=False)
    scheduler.start()
    await clock.advance(35)
    await scheduler.stop()
    assert source.runs == [start + 10, start + 20, start + 30]
