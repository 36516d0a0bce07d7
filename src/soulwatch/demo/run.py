"""``soulwatch demo``: the sample platform, soulwatch watching it, and each fault in turn.

Everything runs in this process on 127.0.0.1, on a :class:`~soulwatch.clock.ScaledClock`
(``speed`` times real time) shared by the platform's workers and by soulwatch,
so the preset's rules keep their real ``for`` durations and windows while the
alerts show within seconds. The backend's latency is real (the SDK measures
real requests); every other time is the demo clock's.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import httpx
from prometheus_client import CollectorRegistry

from soulwatch.api.app import console_of
from soulwatch.clock import ScaledClock
from soulwatch.config import load_config
from soulwatch.demo.config import ADMIN_TOKEN, HEARTBEAT_UUID, demo_config, write_config
from soulwatch.demo.platform import Platform, QuietServer, free_port
from soulwatch.demo.receiver import Delivery, Receiver
from soulwatch.demo.scenarios import SCENARIOS, Scenario
from soulwatch.demo.workers import iso
from soulwatch.instrument.heartbeat import Heartbeat
from soulwatch.service import Monitor

#: Seconds of demo clock between two looks at the receiver.
_POLL = 5.0
_QUOTA_HOURS = 100.0


class Phase(Enum):
    """Where a scenario is."""

    WAITING = "waiting"
    INJECTED = "fault injected"
    DELIVERED = "paged / notified"
    REMOVED = "fault removed"
    PASSED = "resolved"
    FAILED = "FAILED"


@dataclass
class Outcome:
    """What happened in one scenario (times in seconds of demo clock since injection)."""

    scenario: Scenario
    phase: Phase = Phase.WAITING
    delivered_after: float | None = None
    resolved_after: float | None = None
    detail: str = ""

    @property
    def ok(self) -> bool:
        """True once the alert fired, was delivered and resolved."""
        return self.phase is Phase.PASSED


@dataclass
class DemoState:
    """Everything the live display shows."""

    speed: float
    outcomes: list[Outcome]
    soulwatch_url: str = ""
    backend_url: str = ""
    redis: str = ""
    current: Outcome | None = None
    signals: dict[str, str] = field(default_factory=dict)
    alerts: list[tuple[str, str, str]] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    log: list[str] = field(default_factory=list)


#: The signals shown live: a label and the PromQL that computes it.
SIGNALS: list[tuple[str, str, str]] = [
    ("backend /health", 'min(probe_success{job="backend-health"})', "bool"),
    ("backend traffic", 'sum(rate(http_requests_total{job="backend"}[2m])) * 60', "per-min"),
    ("backend 5xx ratio",
     'sum(rate(http_requests_total{job="backend",status=~"5.."}[2m]))'
     ' / sum(rate(http_requests_total{job="backend"}[2m]))', "pct"),
    ("backend P95 latency",
     'histogram_quantile(0.95, sum by (le) '
     '(rate(http_request_duration_seconds_bucket{job="backend"}[5m])))', "s"),
    ("agent failures (15m)",
     'sum(increase(soulcaster_agent_jobs_finished_total{outcome="failed"}[15m]))'
     ' / sum(increase(soulcaster_agent_jobs_finished_total[15m]))', "pct"),
    ("oldest pending job", 'soulcaster_agent_job_oldest_age_seconds{status="pending"}', "age"),
    ("oldest running job", 'soulcaster_agent_job_oldest_age_seconds{status="running"}', "age"),
    ("redis", "min(redis_up)", "bool"),
    ("reddit poller lag", "time() - max(soulcaster_reddit_last_ingest_timestamp_seconds)", "age"),
    ("poller heartbeat", 'heartbeat_up{check="reddit-poller"}', "bool"),
    ("E2B sandboxes", "e2b_sandboxes_running", "n"),
    ("dashboard p75 LCP",
     'histogram_quantile(0.75, sum by (le) (rate(rum_lcp_seconds_bucket[15m])))', "s"),
    ("dashboard React crashes (10m)", 'sum(increase(rum_errors_total{kind="react"}[10m]))', "n"),
    ("E2B quota used", "e2b_sandbox_hours_used / e2b_sandbox_hours_quota", "pct"),
]  # fmt: skip


class Demo:
    """The whole demo: set up, run the scenarios, tear down."""

    def __init__(
        self,
        scenarios: Sequence[str] | None = None,
        *,
        speed: float = 60.0,
        embedded_redis: bool = False,
        on_change: Callable[[DemoState], None] | None = None,
    ) -> None:
        names = list(scenarios or SCENARIOS)
        unknown = [n for n in names if n not in SCENARIOS]
        if unknown:
            raise ValueError(
                f"unknown scenario {unknown[0]!r}; choose from: {', '.join(SCENARIOS)}"
            )
        self.clock = ScaledClock(speed)
        self._embedded_redis = embedded_redis
        self.state = DemoState(speed=speed, outcomes=[Outcome(SCENARIOS[n]) for n in names])
        self._on_change = on_change or (lambda state: None)
        self._stack = contextlib.AsyncExitStack()
        self._config_path: Path | None = None
        self._config: dict[str, Any] = {}
        self.platform: Platform | None = None
        self.monitor: Monitor | None = None
        self.receiver: Receiver | None = None
        self._http: httpx.AsyncClient | None = None

    # -- the run --------------------------------------------------------------------

    async def run(self) -> list[Outcome]:
        """Set up, run every scenario in turn, tear down; returns the outcomes."""
        async with self._stack:
            await self._setup()
            await self._warm_up()
            for outcome in self.state.outcomes:
                await self._scenario(outcome)
                await self._settle()
        return self.state.outcomes

    async def _setup(self) -> None:
        tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="swdemo-")))
        listen_port = free_port()
        sw_url = f"http://127.0.0.1:{listen_port}"
        heartbeat = Heartbeat(
            f"{sw_url}/ping/{HEARTBEAT_UUID}", name="reddit-poller", timeout=2.0, retries=1,
            clock=self.clock, registry=CollectorRegistry(),
        )  # fmt: skip
        self.platform = Platform(
            self.clock,
            heartbeat=heartbeat.asuccess,
            embedded_redis=self._embedded_redis,
            soulwatch_url=sw_url,
        )
        runner = self.platform
        self.receiver = Receiver(
            self.clock,
            on_delivery=self._delivered,
            running_sandboxes=lambda: runner.runner.running if runner.runner else 0,
        )
        receiver_url = await self._serve(self.receiver.app)
        await self.platform.start()
        self._stack.push_async_callback(self.platform.stop)
        assert self.platform.backend is not None
        self._config = demo_config(
            listen=f"127.0.0.1:{listen_port}",
            data_dir=tmp / "data",
            backend_url=self.platform.backend.url,
            redis_url=self.platform.redis.url,
            receiver_url=receiver_url,
            quota_hours=_QUOTA_HOURS,
        )
        self._config_path = write_config(tmp / "soulwatch.yaml", self._config)
        self.monitor = Monitor(load_config(self._config_path), clock=self.clock)
        await self.monitor.start()
        self._stack.push_async_callback(self.monitor.stop)
        app = self.monitor.app()
        console = console_of(app)
        await console.start()
        self._stack.push_async_callback(console.aclose)
        await self._serve(app, port=listen_port, before_stop=console.close_streams)
        self._http = await self._stack.enter_async_context(
            httpx.AsyncClient(base_url=sw_url, timeout=10.0)
        )
        self.state.soulwatch_url = sw_url
        self.state.backend_url = self.platform.backend.url
        self.state.redis = f"{self.platform.redis.kind} at {self.platform.redis.url}"
        self._say(
            f"platform and soulwatch started; the console is at {sw_url}/"
            f" (to silence or acknowledge, log in with the demo token {ADMIN_TOKEN})"
        )

    async def _serve(
        self, app: Any, port: int | None = None, before_stop: Callable[[], None] | None = None
    ) -> str:
        import uvicorn

        port = port or free_port()
        server = QuietServer(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error",
                           access_log=False, lifespan="off")
        )  # fmt: skip
        task = asyncio.create_task(server.serve())

        async def stop() -> None:
            if before_stop is not None:
                before_stop()  # open event streams end, so the server stops at once
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 10)

        self._stack.push_async_callback(stop)
        for _ in range(200):
            if server.started:
                return f"http://127.0.0.1:{port}"
            await asyncio.sleep(0.05)
        raise RuntimeError(f"could not serve on 127.0.0.1:{port}")

    async def _warm_up(self) -> None:
        """Until the pipeline is proven (Watchdog delivered) and the signals have history."""
        assert self.receiver is not None
        self._say("warming up: waiting for the Watchdog alert to reach its receiver")
        start = self.clock.time()
        for _ in range(round(3600 / _POLL)):
            await self._tick()
            if self.receiver.got("Watchdog", "firing"):
                self._say(
                    f"pipeline proven: Watchdog delivered {_dur(self.clock.time() - start)}"
                    " after start"
                )
                break
        # Rate windows need a few minutes of samples before the first fault.
        for _ in range(round(300 / _POLL)):
            await self._tick()

    async def _scenario(self, outcome: Outcome) -> None:
        assert self.receiver is not None
        scenario = outcome.scenario
        self.state.current = outcome
        start = self.clock.time()
        seen = len(self.receiver.deliveries)
        self._say(f"{scenario.name}: injecting — {scenario.title}")
        await scenario.inject(self)
        outcome.phase = Phase.INJECTED
        delivered = await self._wait_for(seen, scenario, "firing", scenario.receivers)
        if not delivered:
            outcome.phase = Phase.FAILED
            outcome.detail = f"no firing {'/'.join(scenario.expect)} at {scenario.receivers}"
            self._say(f"{scenario.name}: FAILED — {outcome.detail}")
            await scenario.remove(self)
            return
        outcome.delivered_after = self.clock.time() - start
        outcome.phase = Phase.DELIVERED
        self._say(f"{scenario.name}: delivered after {_dur(outcome.delivered_after)}; removing")
        removed = self.clock.time()
        await scenario.remove(self)
        outcome.phase = Phase.REMOVED
        resolved = await self._wait_for(seen, scenario, "resolved", scenario.receivers[:1])
        if not resolved:
            outcome.phase = Phase.FAILED
            outcome.detail = f"{'/'.join(scenario.expect)} did not resolve"
            self._say(f"{scenario.name}: FAILED — {outcome.detail}")
            return
        outcome.resolved_after = self.clock.time() - removed
        outcome.phase = Phase.PASSED
        self._say(f"{scenario.name}: resolved {_dur(outcome.resolved_after)} after the fix")

    async def _wait_for(
        self, seen: int, scenario: Scenario, status: str, receivers: Sequence[str]
    ) -> bool:
        assert self.receiver is not None
        for _ in range(round(scenario.budget / _POLL)):
            await self._tick()
            fresh = self.receiver.deliveries[seen:]
            if all(
                any(d.alertname == name and d.status == status and d.receiver == r for d in fresh)
                for name in scenario.expect
                for r in receivers
            ):
                return True
        return False

    async def _settle(self) -> None:
        """Until no alert but the Watchdog is firing or pending, so scenarios don't overlap."""
        for _ in range(round(3600 / _POLL)):
            await self._tick()
            if all(name == "Watchdog" for name, _, _ in self.state.alerts):
                return

    async def _tick(self) -> None:
        await self.clock.sleep(_POLL)
        await self._refresh()
        self._on_change(self.state)

    async def _refresh(self) -> None:
        assert self._http is not None
        for label, query, _ in SIGNALS:
            self.state.signals[label] = await self._query(query)
        with contextlib.suppress(httpx.HTTPError, KeyError, ValueError):
            response = await self._http.get("/api/v1/alerts")
            self.state.alerts = sorted(
                (a["labels"].get("alertname", ""), a["state"], a["labels"].get("priority", ""))
                for a in response.json()["data"]["alerts"]
            )

    async def _query(self, query: str) -> str:
        assert self._http is not None
        try:
            response = await self._http.get("/api/v1/query", params={"query": query})
            result = response.json()["data"]["result"]
        except (httpx.HTTPError, KeyError, ValueError):
            return "?"
        if not result:
            return "—"
        return str(result[0]["value"][1])

    def _delivered(self, delivery: Delivery) -> None:
        self.state.deliveries.append(delivery)

    def _say(self, message: str) -> None:
        stamp = iso(self.clock.time())[11:19]
        self.state.log.append(f"{stamp}  {message}")
        self._on_change(self.state)

    # -- Controls (what scenarios do) ---------------------------------------------------

    async def stop_backend(self) -> None:
        """Stop the backend's server."""
        assert self.platform is not None
        assert self.platform.backend is not None
        await self.platform.backend.stop()

    async def start_backend(self) -> None:
        """Start the backend again."""
        assert self.platform is not None
        assert self.platform.backend is not None
        await self.platform.backend.start()

    async def stop_redis(self) -> None:
        """Stop the platform's Redis."""
        assert self.platform is not None
        await self.platform.redis.stop()

    async def start_redis(self) -> None:
        """Start it again with its data."""
        assert self.platform is not None
        await self.platform.redis.start()

    async def heavy_sandbox_usage(self) -> None:
        """Thirty finished agent jobs of three hours each, this month: 90 sandbox-hours."""
        assert self.platform is not None
        client = self.platform.redis_client
        now = self.clock.time()
        for i in range(30):
            await client.hset(
                f"job:batch-{i}",
                mapping={
                    "id": f"batch-{i}", "status": "success", "created_at": iso(now - 3 * 3600),
                    "updated_at": iso(now), "logs": "", "runner": "e2b", "project_id": "demo",
                    "cluster_id": "batch", "pr_url": "",
                },
            )  # fmt: skip

    async def set_quota(self, hours: float) -> None:
        """Raise the monthly quota in the config file and reload soulwatch through its API."""
        assert self._config_path is not None
        assert self._http is not None
        collectors = self._config["collectors"]
        collectors["e2b"]["monthly_hours_quota"] = hours
        write_config(self._config_path, self._config)
        response = await self._http.post(
            "/-/reload", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        response.raise_for_status()

    def set_fault(self, name: str, value: float | bool) -> None:
        """Flip one fault switch."""
        assert self.platform is not None
        setattr(self.platform.faults, name, value)


def _dur(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
