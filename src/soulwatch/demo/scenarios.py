"""The demo's fault scenarios: what each injects, what must fire, how it is removed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol


class Controls(Protocol):
    """What a scenario can do to the platform and to soulwatch."""

    async def stop_backend(self) -> None:
        """Stop the backend's server."""
        ...

    async def start_backend(self) -> None:
        """Start it again."""
        ...

    async def stop_redis(self) -> None:
        """Stop the platform's Redis."""
        ...

    async def start_redis(self) -> None:
        """Start it again, with its data."""
        ...

    async def heavy_sandbox_usage(self) -> None:
        """Record a burst of long agent jobs this month (sandbox-hours near the quota)."""
        ...

    async def set_quota(self, hours: float) -> None:
        """Change the monthly quota in soulwatch's config and reload it."""
        ...

    def set_fault(self, name: str, value: float | bool) -> None:
        """Flip one switch of :class:`~soulwatch.demo.faults.Faults`."""
        ...


Step = Callable[[Controls], Awaitable[None]]


@dataclass(frozen=True)
class Scenario:
    """One fault: ``inject`` it, wait for ``expect`` to fire, ``remove`` it, wait for resolution.

    ``receivers`` are where the page or notification must arrive. ``budget``
    bounds each wait, in seconds of the demo clock.
    """

    name: str
    title: str
    expect: tuple[str, ...]
    receivers: tuple[str, ...]
    inject: Step
    remove: Step
    budget: float = 3 * 3600.0


def _fault(name: str, on: float | bool, off: float | bool) -> tuple[Step, Step]:
    async def inject(c: Controls) -> None:
        c.set_fault(name, on)

    async def remove(c: Controls) -> None:
        c.set_fault(name, off)

    return inject, remove


async def _backend_down(c: Controls) -> None:
    await c.stop_backend()


async def _backend_up(c: Controls) -> None:
    await c.start_backend()


async def _redis_down(c: Controls) -> None:
    await c.stop_redis()


async def _redis_up(c: Controls) -> None:
    await c.start_redis()


async def _quota_near(c: Controls) -> None:
    await c.heavy_sandbox_usage()


async def _quota_raised(c: Controls) -> None:
    await c.set_quota(1000.0)


def _scenarios() -> list[Scenario]:
    errors = _fault("error_rate", 0.3, 0.0)
    latency = _fault("extra_latency", 2.5, 0.0)
    failures = _fault("agent_failure_rate", 1.0, 0.05)
    stalled = _fault("runner_stalled", True, False)
    hung = _fault("hung_job", True, False)
    poller = _fault("poller_stalled", True, False)
    slow_pages = _fault("slow_pages", True, False)
    crashes = _fault("crash_loop", True, False)
    return [
        Scenario("backend-down", "Backend down: /health failing > 2 min",
                 ("BackendDown",), ("page", "chat"), _backend_down, _backend_up),
        Scenario("error-burst", "5xx rate > 5% for 5 min",
                 ("HighErrorRate",), ("page", "chat"), *errors),
        Scenario("latency", "P95 latency > 2 s for 15 min",
                 ("HighLatency",), ("chat", "ticket"), *latency),
        Scenario("agent-failures", "> 50% of agent jobs failing in 15 min",
                 ("AgentFailureSpike",), ("page", "chat"), *failures),
        Scenario("stuck-pending", "An agent job pending > 10 min (runner stalled)",
                 ("AgentJobStuckPending",), ("chat", "ticket"), *stalled),
        Scenario("sandbox-timeout", "One agent job running > 15 min",
                 ("AgentJobStuckRunning",), ("chat", "ticket"), *hung),
        Scenario("redis-down", "Redis connection loss",
                 ("RedisConnectionLoss",), ("page", "chat"), _redis_down, _redis_up),
        Scenario("poller-stalled", "Reddit poller: nothing ingested > 2 h",
                 ("HeartbeatMissing", "RedditPollerLag"), ("chat", "ticket"), *poller),
        Scenario("quota", "E2B sandbox-hours > 80% of the monthly quota",
                 ("E2BQuotaWarning",), ("chat", "ticket"), _quota_near, _quota_raised),
        Scenario("slow-pages", "Dashboard p75 LCP > 2.5 s for 15 min (real users)",
                 ("DashboardSlowPages",), ("chat", "ticket"), *slow_pages),
        Scenario("crash-loop", "Dashboard React crashes: 5 in 10 min (real users)",
                 ("DashboardCrashSpike",), ("chat", "ticket"), *crashes),
    ]  # fmt: skip


SCENARIOS: dict[str, Scenario] = {s.name: s for s in _scenarios()}
