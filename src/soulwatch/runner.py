"""Where the monitor's blocking work runs: one policy, handed to every component.

PromQL evaluation, SQLite writes and TSDB maintenance are synchronous and may
take seconds; run on the event loop, they would hold up every scrape, probe,
heartbeat ping and HTTP answer meanwhile. A :class:`BlockingRunner` moves
such a call off the loop and awaits its result.

* :class:`ThreadRunner` (the default on a real clock) runs calls in a small
  pool of worker threads owned by the monitor, so a burst of slow queries
  cannot use up the interpreter's shared default executor.
* :func:`run_inline` runs the call on the loop itself. Under a
  :class:`~soulwatch.clock.SimulatedClock` a thread hop would let simulated
  time move on before the call returns; inline, every step finishes at the
  instant it started, so scenario runs and tests stay deterministic.

:func:`runner_for` picks between them by the clock. On threads, the API's
queries get a pool of their own (:data:`QUERY_WORKERS`), so users' queries
never queue the monitor's own work behind them. A query run this way is still
bounded: the PromQL engine stops itself at its ``timeout_s``, or sooner when
its caller cancels it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Gauge

from soulwatch.clock import Clock, SimulatedClock

_T = TypeVar("_T")

#: Worker threads of the default runner: enough for the rule groups, scrape
#: parsing and the stores to overlap; the GIL makes more pointless.
DEFAULT_WORKERS = 4
#: Worker threads for the API's queries: users' queries wait for each other,
#: never the monitor's own work for them (nor the reverse).
QUERY_WORKERS = 2


class BlockingRunner(Protocol):
    """Runs a blocking call off the event loop and returns its result."""

    def __call__(self, func: Callable[..., _T], /, *args: Any) -> Awaitable[_T]:
        """Run ``func(*args)``; the awaitable gives its result or raises its error."""
        ...


async def run_inline(func: Callable[..., _T], /, *args: Any) -> _T:
    """A :class:`BlockingRunner` that runs the call on the event loop itself.

    For the simulated clock: every loop step finishes at the simulated instant
    it started (scenario runs, deterministic tests).
    """
    return func(*args)


class ThreadRunner:
    """A :class:`BlockingRunner` over a pool of worker threads; :meth:`close` it once.

    The caller's context variables (request ids, log context) travel to the
    worker, as with :func:`asyncio.to_thread`. :attr:`busy` and :attr:`queued`
    count the calls running and waiting for a worker (:func:`expose` exports them).
    """

    def __init__(self, workers: int = DEFAULT_WORKERS, *, name: str = "soulwatch-work") -> None:
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._counts = threading.Lock()
        self._submitted = 0
        self._busy = 0

    @property
    def busy(self) -> int:
        """Calls running in a worker thread now."""
        return self._busy

    @property
    def queued(self) -> int:
        """Calls waiting for a free worker thread."""
        return max(0, self._submitted - self._busy)

    async def __call__(self, func: Callable[..., _T], /, *args: Any) -> _T:
        """Run ``func(*args)`` in a worker thread."""
        call = functools.partial(contextvars.copy_context().run, func, *args)
        future = self._pool.submit(self._counted, call)
        with self._counts:
            self._submitted += 1
        # Done or cancelled before it started: either way it has left the pool.
        future.add_done_callback(self._left)
        return await asyncio.wrap_future(future)

    def _counted(self, call: Callable[[], _T]) -> _T:
        with self._counts:
            self._busy += 1
        try:
            return call()
        finally:
            with self._counts:
                self._busy -= 1

    def _left(self, _: object) -> None:
        with self._counts:
            self._submitted -= 1

    def close(self) -> None:
        """Drop queued calls; workers end when their running call does (the monitor's last step).

        It does not wait, so a stop is not held up by a long query: that one
        ends at the engine's timeout, and the process's exit waits for it.
        """
        self._pool.shutdown(wait=False, cancel_futures=True)


async def run_in_thread(func: Callable[..., _T], /, *args: Any) -> _T:
    """A :class:`BlockingRunner` on the interpreter's shared pool (components used alone)."""
    return await asyncio.to_thread(func, *args)


def runner_for(clock: Clock) -> BlockingRunner:
    """The runner a monitor on ``clock`` uses by default: inline when time is simulated."""
    if isinstance(clock, SimulatedClock):
        return run_inline
    return ThreadRunner()


def expose(registry: CollectorRegistry, runners: dict[str, ThreadRunner]) -> None:
    """Export each runner's busy and queued calls as gauges of ``registry``, by pool name."""
    running = Gauge(
        "soulwatch_worker_calls_running",
        "Blocking calls (PromQL, SQLite writes) running in the monitor's worker threads.",
        ["pool"],
        registry=registry,
    )
    queued = Gauge(
        "soulwatch_worker_calls_queued",
        "Blocking calls waiting for a free worker thread.",
        ["pool"],
        registry=registry,
    )
    for name, runner in runners.items():
        running.labels(pool=name).set_function(functools.partial(_busy, runner))
        queued.labels(pool=name).set_function(functools.partial(_queued, runner))


def _busy(runner: ThreadRunner) -> float:
    return runner.busy


def _queued(runner: ThreadRunner) -> float:
    return runner.queued
