"""The simulated clock wakes sleepers in deadline order without real sleeping."""

import asyncio

import pytest

from soulwatch.clock import ScaledClock, SimulatedClock


async def test_sleepers_wake_in_deadline_order_at_their_deadline(clock: SimulatedClock) -> None:
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.time() - 1_700_000_000.0))

    tasks = [asyncio.create_task(sleeper("b", 20)), asyncio.create_task(sleeper("a", 5))]
    await clock.advance(10)
    assert woke == [("a", 5.0)]
    await clock.advance(10)
    assert woke == [("a", 5.0), ("b", 20.0)]
    await asyncio.gather(*tasks)


async def test_a_loop_sees_every_tick(clock: SimulatedClock) -> None:
    ticks: list[float] = []

    async def loop() -> None:
        for _ in range(5):
            await clock.sleep(15)
            ticks.append(clock.time())

    task = asyncio.create_task(loop())
    await clock.advance(60)
    assert [t - 1_700_000_000.0 for t in ticks] == [15, 30, 45, 60]
    await clock.advance(15)
    await task
    assert len(ticks) == 5


def test_clock_cannot_go_back(clock: SimulatedClock) -> None:
    with pytest.raises(ValueError, match="cannot go back"):
        clock.set_time(0)


async def test_scaled_clock_runs_faster_than_real_time() -> None:
    clock = ScaledClock(100.0, start=1000.0)
    before = clock.time()
    await clock.sleep(5)  # 50 ms of real time
    elapsed = clock.time() - before
    assert elapsed >= 5.0
    assert clock.monotonic() >= 5.0
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(0)
