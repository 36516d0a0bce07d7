"""The monitor's own periodic work and self-metrics.

Heartbeat evaluation, TSDB and silence maintenance, the store health check
and the outbound dead man's switch are :class:`Periodic` sources run by the same
:class:`~soulwatch.sources.base.Scheduler` as every other source, on the
monitor's clock. A failing step is counted in ``soulwatch_loop_errors_total``,
logged, shown on the source's status, and tried again at the next tick.

The event-loop lag probe is the exception: it measures the real loop, so it
sleeps in real time whatever the monitor's clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from soulwatch import __version__
from soulwatch.config import SoulwatchConfig
from soulwatch.exceptions import SoulwatchError
from soulwatch.sources.base import Health, SourceStatus

_log = structlog.get_logger("soulwatch.housekeeping")

#: How often the TSDB is maintained and expired silences are pruned.
MAINTENANCE_INTERVAL = 60.0

#: How often failing stores are checked again (and new failures time-stamped).
STORE_CHECK_INTERVAL = 5.0

#: How often the event loop's lag is measured (real seconds).
LOOP_LAG_INTERVAL = 0.5


class SelfMetrics:
    """The monitor's own gauges and counters, on its registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.loop_lag = Gauge(
            "soulwatch_event_loop_lag_seconds",
            "How late the event loop ran a timer at the last check.",
            registry=registry,
        )
        self.reload_ok = Gauge(
            "soulwatch_config_last_reload_successful",
            "Whether the last configuration reload succeeded.",
            registry=registry,
        )
        self.reload_time = Gauge(
            "soulwatch_config_last_reload_success_timestamp_seconds",
            "Time of the last successful configuration reload.",
            registry=registry,
        )
        self.loop_errors = Counter(
            "soulwatch_loop_errors_total",
            "Failures of a background loop, which then went on.",
            ["loop"],
            registry=registry,
        )
        self.deadman = Counter(
            "soulwatch_deadman_pings_total",
            "Pings of the outbound dead man's switch, by result.",
            ["result"],
            registry=registry,
        )
        info = Gauge("soulwatch_build_info", "soulwatch's version.", ["version"], registry=registry)
        info.labels(version=__version__).set(1)


class Periodic:
    """A :class:`~soulwatch.sources.base.Source` that runs one step of the monitor's own work."""

    def __init__(
        self,
        name: str,
        interval: float,
        step: Callable[[], Awaitable[None]],
        metrics: SelfMetrics,
    ) -> None:
        self._name = name
        self._step = step
        self._metrics = metrics
        #: ``monitor/<name>``
        self.key = f"monitor/{name}"
        #: seconds between steps
        self.interval = interval
        #: the outcome of the last step
        self.status = SourceStatus()

    async def run_once(self, t: float) -> None:
        """Run the step; a failure is recorded, and the next tick tries again."""
        self.status.last_run = t
        self.status.runs += 1
        try:
            await self._step()
        except (SoulwatchError, OSError) as exc:
            self._metrics.loop_errors.labels(loop=self._name).inc()
            self.status.health = Health.DOWN
            self.status.last_error = str(exc)
            _log.warning("loop step failed", loop=self._name, error=str(exc))
            return
        self.status.health = Health.UP
        self.status.last_error = ""

    async def close(self) -> None:
        """Nothing to release."""


def heartbeat_interval(config: SoulwatchConfig) -> float:
    """How often heartbeat checks are evaluated."""
    hb = config.heartbeats.evaluation_interval
    return hb if hb is not None else config.global_.evaluation_interval


async def ping_deadman(
    config: SoulwatchConfig, client: httpx.AsyncClient, metrics: SelfMetrics
) -> None:
    """One ping of the outbound dead man's switch, counted by result."""
    url = config.self_monitoring.resolved_deadman_url()
    if not url:
        return
    try:
        r = await client.get(url, timeout=config.self_monitoring.deadman_timeout)
        result = "success" if r.is_success else "failure"
    except httpx.HTTPError:
        result = "failure"
    metrics.deadman.labels(result=result).inc()


async def measure_loop_lag(metrics: SelfMetrics, interval: float = LOOP_LAG_INTERVAL) -> None:
    """Forever: how late the event loop wakes a real-time timer (blocking work shows here)."""
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + interval
        await asyncio.sleep(interval)
        metrics.loop_lag.set(max(0.0, loop.time() - expected))
