"""One monitor: config -> components -> loops on one asyncio loop, and its lifespan.

:class:`Monitor` opens the data directory (TSDB, heartbeat, alert-state,
silence and outbox databases), builds the PromQL engine, the scrape manager,
collectors, the heartbeat monitor, the rule manager and the alert dispatcher
from a :class:`~soulwatch.config.SoulwatchConfig`, and runs their loops on the
injected :class:`~soulwatch.clock.Clock`. :meth:`Monitor.reload` applies a new
config only once all of it (rule files and routing included) is valid: a bad
one raises :class:`~soulwatch.exceptions.ConfigError` and the old keeps
running. :meth:`Monitor.stop` stops everything within a bounded time.

:func:`soulwatch.server.serve` runs a monitor behind uvicorn.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from soulwatch import __version__
from soulwatch.alerting.actions import ActionRunner
from soulwatch.alerting.config import AlertingConfig, DeliveryConfig
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.notifiers.factory import build_notifiers
from soulwatch.alerting.outbox import ForwardingListener, Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.app import create_app
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.api.views import OutboxView, RuleManagerView, ScrapeView, SilenceStoreView
from soulwatch.clock import Clock, SystemClock
from soulwatch.config import SoulwatchConfig, load_config
from soulwatch.exceptions import ConfigError, SoulwatchError
from soulwatch.otlp.intake import OtlpIntake
from soulwatch.promql.engine import Engine
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.remote.manager import RemoteWriteManager
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.loader import load_rule_files
from soulwatch.rules.model import GroupSpec
from soulwatch.rules.store import AlertStateStore
from soulwatch.rum import RumIntake, RumRecorder
from soulwatch.sources.base import Scheduler, Source, SourceStatus, phase
from soulwatch.sources.collectors.e2b import E2BCollector
from soulwatch.sources.collectors.redis_reader import RedisPyReader, UpstashRestReader
from soulwatch.sources.collectors.soulcaster import SoulcasterCollector
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.sources.heartbeats import HeartbeatMonitor, HeartbeatStore
from soulwatch.sources.probes.manager import ProbeManager
from soulwatch.sources.scrape.manager import ScrapeManager
from soulwatch.tsdb.db import TSDB

_log = structlog.get_logger("soulwatch.service")

#: How long :meth:`Monitor.stop` waits for each stage before moving on.
STOP_STAGE_TIMEOUT = 5.0

_T = TypeVar("_T")


class BlockingRunner(Protocol):
    """How the monitor runs a blocking call (SQLite, TSDB): ``asyncio.to_thread`` by default."""

    def __call__(self, func: Callable[..., _T], /, *args: Any) -> Awaitable[_T]:
        """Run ``func(*args)`` and return its result."""
        ...


async def run_inline(func: Callable[..., _T], /, *args: Any) -> _T:
    """A :class:`BlockingRunner` that runs the call on the event loop itself.

    Under a :class:`~soulwatch.clock.SimulatedClock` a thread hop lets time move
    on before the call returns; inline, every loop step finishes at the
    simulated instant it started (scenario runs, deterministic tests).
    """
    return func(*args)


class _NullSink:
    """The alert sink when no routing is configured: alerts show in the API only."""

    async def send(self, alerts: Any) -> None:
        return None


class _SelfMetrics:
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


class Monitor:
    """Every component of one soulwatch, wired from one config.

    ``clock`` drives every schedule (a :class:`~soulwatch.clock.SimulatedClock`
    runs the whole monitor in tests); ``transport`` replaces the HTTP transport
    of outbound clients (notifications, dead man's switch); ``run_blocking``
    runs blocking store calls (default ``asyncio.to_thread``; :func:`run_inline`
    keeps a simulated run deterministic).
    """

    def __init__(
        self,
        config: SoulwatchConfig,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        run_blocking: BlockingRunner | None = None,
    ) -> None:
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self._transport = transport
        self._blocking: BlockingRunner = run_blocking or asyncio.to_thread
        self.registry = CollectorRegistry()
        self.metrics = _SelfMetrics(self.registry)
        self.data_dir = Path(config.data_dir)
        if not self.data_dir.is_absolute():
            self.data_dir = config.resolve(self.data_dir)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._started = False
        self._stopping = False
        self._reload_lock = asyncio.Lock()
        self._rule_specs: list[GroupSpec] = []
        self._phase_mode = config.rule_evaluation_phase
        # Built by start():
        self.storage: TSDB
        self.engine: Engine
        self.heartbeats: HeartbeatMonitor
        self.scrape: ScrapeManager
        self.collectors: Scheduler
        self.rum: RumRecorder | None = None
        self.otlp: OtlpIntake | None = None
        self.probes: ProbeManager
        self.rules: RuleManager
        self.silences: SilenceStore
        self.outbox: Outbox
        self.dispatcher: Dispatcher | None = None
        self.actions: ActionRunner | None = None
        # The outbox's retry policy is fixed when it opens; a reload only warns.
        self._delivery: DeliveryConfig | None = None
        self._http: httpx.AsyncClient
        self.ctx: ApiContext

    # -- lifespan -----------------------------------------------------------------

    async def start(self) -> None:
        """Open the stores and start every loop."""
        config = self.config
        specs = self.check_rules(config)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._http = httpx.AsyncClient(transport=self._transport, timeout=10.0, trust_env=False)
        self.storage = await self._blocking(self._open_storage, config)
        self.remote_write = RemoteWriteManager(
            config.remote_write,
            self.storage,
            state_dir=self.data_dir / "remote_write",
            external_labels=config.global_.external_labels,
            clock=self.clock,
            run_blocking=self._blocking,
            registry=self.registry,
            transport=self._transport,
        )
        self.engine = Engine(
            self.storage,
            clock=self.clock,
            lookback_delta_ms=round(config.api.lookback_delta * 1000),
            timeout_s=config.api.query_timeout,
            default_subquery_step_ms=round(config.global_.evaluation_interval * 1000),
        )
        hb_store = await self._blocking(HeartbeatStore, self.data_dir / "heartbeats.sqlite")
        self.heartbeats = HeartbeatMonitor(hb_store, config.heartbeats)
        self.silences = SilenceStore(
            self.data_dir / "silences.sqlite",
            self.clock,
            max_duration=config.silences.max_duration,
            retention=config.silences.retention,
        )
        routing = self.routing_of(config)
        self._delivery = routing.delivery if routing is not None else DeliveryConfig()
        self.outbox = Outbox(
            self.data_dir / "outbox.sqlite",
            clock=self.clock,
            listener=ForwardingListener(lambda: self.dispatcher),
            registry=self.registry,
            settings=self._delivery,
        )
        self._install_dispatcher(routing, *self._delivery_parts(routing))
        self.rules = RuleManager(
            engine=self.engine,
            storage=self.storage,
            sink=self.dispatcher or _NullSink(),
            clock=self.clock,
            store=AlertStateStore.in_data_dir(self.data_dir),
            registry=self.registry,
            default_interval_s=config.global_.evaluation_interval,
            external_labels=config.global_.external_labels,
            external_url=config.external_url or f"http://{config.listen}",
            validate_expr=parse_promql,
            phase_for=self._evaluation_phase,
        )
        self.scrape = ScrapeManager(
            config.resolved_scrape_configs(), self.storage, clock=self.clock
        )
        # RUM aggregates live for the whole run: a reload keeps the counters.
        self.rum = RumRecorder(config.rum, self.clock.time) if config.rum.sites else None
        self.otlp = OtlpIntake(config.otlp) if config.otlp.enabled else None
        self.collectors = Scheduler(self.clock, self._collector_sources(config))
        self.probes = ProbeManager(config.probes, self.storage, clock=self.clock)
        # Groups are placed after the sources exist: they evaluate right after them.
        self.rules.set_groups(specs)
        self._rule_specs = specs
        self.ctx = ApiContext(
            storage=self.storage,
            engine=self.engine,
            clock=self.clock,
            api=config.api,
            auth=config.auth,
            heartbeats=self.heartbeats,
            rules=RuleManagerView(self.rules),
            targets=ScrapeView(self._target_statuses, self._probe_statuses),
            receivers=OutboxView(routing, self.outbox) if routing else None,
            silences=SilenceStoreView(self.silences),
            reload=self.reload,
            config=config,
            ready=lambda: self._started and not self._stopping,
            metrics=lambda: generate_latest(self.registry),
            health=self.health,
            external_labels=tuple(config.global_.external_labels.items()),
            rum=RumIntake(config.rum, self.rum, self.clock) if self.rum else None,
            otlp=self.otlp,
        )
        self.scrape.start()
        self.probes.start()
        self.collectors.start()
        await self.rules.start()
        self._spawn("outbox", self.outbox.run)
        if self.dispatcher is not None:
            self._spawn("dispatcher", self.dispatcher.run)
        self._spawn("heartbeats", self._heartbeat_loop)
        self._spawn("tsdb-maintenance", self._maintenance_loop)
        if self.remote_write.queues:
            self._spawn("remote-write", self.remote_write.run)
        self._spawn("loop-lag", self._loop_lag)
        if config.self_monitoring.resolved_deadman_url():
            self._spawn("deadman", self._deadman_loop)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(self.clock.time())
        self._started = True
        _log.info(
            "soulwatch started",
            data_dir=str(self.data_dir),
            targets=len(self.scrape.targets),
            rule_groups=len(specs),
            heartbeat_checks=len(self.heartbeats.checks()),
        )

    async def stop(self) -> None:
        """Stop every loop and close every store; each stage is bounded in time."""
        if self._stopping:
            return
        self._stopping = True
        stages: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("scrape", self.scrape.stop),
            ("probes", self.probes.stop),
            ("collectors", self.collectors.stop),
            ("rules", self.rules.stop),
            ("dispatcher", self._close_dispatcher),
            ("tasks", self._cancel_tasks),
            ("remote-write", self.remote_write.close),
            ("http", self._http.aclose),
        ]
        for name, stage in stages:
            try:
                await asyncio.wait_for(stage(), STOP_STAGE_TIMEOUT)
            except TimeoutError:
                _log.warning("stop stage timed out", stage=name, timeout=STOP_STAGE_TIMEOUT)
            except SoulwatchError as exc:
                _log.warning("stop stage failed", stage=name, error=str(exc))
        for close in (
            self.outbox.close,
            self.silences.close,
            self.heartbeats.store.close,
            self.storage.close,
        ):
            await self._blocking(close)
        if self.rules.store is not None:
            self.rules.store.close()
        if self.actions is not None:
            self.actions.close()
        _log.info("soulwatch stopped")

    # -- reload -------------------------------------------------------------------

    async def reload(self, config: SoulwatchConfig | None = None) -> None:
        """Apply a new config (re-read from its file when not given).

        Everything is validated first; a problem raises :class:`ConfigError`
        and changes nothing. Listen address, data dir and storage settings
        need a restart; a change to them is logged.
        """
        async with self._reload_lock:
            try:
                new = config if config is not None else await self._blocking(self._reread)
                specs = self.check_rules(new)
                await self._apply(new, specs)
            except ConfigError:
                self.metrics.reload_ok.set(0)
                raise
            self.metrics.reload_ok.set(1)
            self.metrics.reload_time.set(self.clock.time())
            _log.info("configuration reloaded", rule_groups=len(specs))

    async def _apply(self, new: SoulwatchConfig, specs: list[GroupSpec]) -> None:
        """Swap in the parts that changed (``new`` is already valid)."""
        old = self.config
        for key in ("listen", "data_dir", "storage", "remote_write"):
            if getattr(new, key) != getattr(old, key):
                _log.warning("setting changed; it takes effect after a restart", setting=key)
        # Build the new parts before touching the running ones, so a
        # failure here (an unset url_env, an unreadable CA file) changes nothing.
        # Scrape and probe jobs whose config is unchanged keep running (no gap,
        # no staleness markers), as Prometheus keeps its scrape pools.
        scrape = self.scrape.prepare(new.resolved_scrape_configs())
        probes = None
        collectors = None
        delivery = None
        routing = self.routing_of(new)
        try:
            probes = self.probes.prepare(new.probes)
            if new.collectors != old.collectors:
                collectors = Scheduler(self.clock, self._collector_sources(new))
            if routing != self.routing_of(old):
                # Built last: it opens the action audit log, which a later failure would leak.
                delivery = self._delivery_parts(routing)
        except BaseException:
            await self.scrape.discard(scrape)
            if probes is not None:
                await self.probes.discard(probes)
            raise
        if routing is not None and routing.delivery != self._delivery:
            _log.warning(
                "setting changed; it takes effect after a restart", setting="alerting.delivery"
            )
        await self.scrape.apply(scrape)
        await self.probes.apply(probes)
        if scrape.added or scrape.removed or probes.added or probes.removed:
            _log.info(
                "scrape and probe jobs reloaded",
                kept=scrape.kept + probes.kept,
                started=scrape.added + probes.added,
                stopped=scrape.removed + probes.removed,
            )
        if collectors is not None:
            await self.collectors.stop()
            self.collectors = collectors
            self.collectors.start()
        self.heartbeats.configure(new.heartbeats, now=self.clock.time())
        if delivery is not None:
            await self._swap_dispatcher(routing, *delivery)
        self._phase_mode = new.rule_evaluation_phase
        self.rules.set_groups(specs)
        self._rule_specs = specs
        self.ctx.auth = new.auth
        self.ctx.api = new.api
        self.ctx.config = new
        self.ctx.receivers = OutboxView(routing, self.outbox) if routing else None
        self.silences.max_duration = new.silences.max_duration
        self.silences.retention = new.silences.retention
        self.config = new

    def _reread(self) -> SoulwatchConfig:
        source = self.config.source
        if source is None:
            raise ConfigError("this monitor was not started from a config file")
        new = load_config(source)
        # Command-line overrides stay in force across reloads.
        return new.with_overrides(data_dir=self.config.data_dir, listen=self.config.listen)

    @staticmethod
    def check_rules(config: SoulwatchConfig) -> list[GroupSpec]:
        """The rule groups of ``config``'s rule files; raises on any invalid rule."""
        return load_rule_files(config.rule_paths(), validate_expr=parse_promql)

    def routing_of(self, config: SoulwatchConfig) -> AlertingConfig | None:
        """``config``'s routing as the monitor runs it.

        Without its own ``alerting.external_url``, notifications link to the
        monitor's ``external_url`` (or ``http://<listen>``), the same base as
        the alerts' generator URLs.
        """
        routing = config.routing
        if routing is None or "external_url" in routing.model_fields_set:
            return routing
        url = config.external_url or f"http://{config.listen}"
        return routing.model_copy(update={"external_url": url})

    def _delivery_parts(
        self, routing: AlertingConfig | None
    ) -> tuple[dict[str, Notifier], ActionRunner | None]:
        """The notifiers and action runner of ``routing``; raises before anything runs."""
        if routing is None:
            return {}, None
        notifiers = build_notifiers(
            routing, client=self._http, clock=self.clock, issue_index=self.outbox.issues
        )
        runner = None
        if routing.actions:
            runner = ActionRunner(
                routing.actions,
                db_path=self.data_dir / "actions.sqlite",
                clock=self.clock,
                client=self._http,
            )
        return notifiers, runner

    def _install_dispatcher(
        self,
        routing: AlertingConfig | None,
        notifiers: dict[str, Notifier],
        runner: ActionRunner | None,
    ) -> None:
        self.actions = runner
        if routing is None:
            self.dispatcher = None
            return
        self.outbox.use_notifiers(notifiers)
        self.dispatcher = Dispatcher(
            routing, clock=self.clock, outbox=self.outbox, silences=self.silences, actions=runner
        )

    async def _close_dispatcher(self) -> None:
        """Detach the dispatcher from the silences and the outbox, let its running
        actions finish, then stop its loop."""
        if self.dispatcher is not None:
            await self.dispatcher.aclose()
        task = self._tasks.pop("dispatcher", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _swap_dispatcher(
        self,
        routing: AlertingConfig | None,
        notifiers: dict[str, Notifier],
        runner: ActionRunner | None,
    ) -> None:
        # The old one first: its aclose() only detaches callbacks that are still
        # its own, so the new dispatcher must register after it.
        await self._close_dispatcher()
        if self.actions is not None:
            await self._blocking(self.actions.close)
        self._install_dispatcher(routing, notifiers, runner)
        self.rules.sink = self.dispatcher or _NullSink()
        if self.dispatcher is not None:
            self._spawn("dispatcher", self.dispatcher.run)

    # -- building -----------------------------------------------------------------

    def _open_storage(self, config: SoulwatchConfig) -> TSDB:
        settings = config.storage
        if "path" not in settings.model_fields_set:
            settings = settings.model_copy(update={"path": self.data_dir / "tsdb"})
        elif not Path(settings.path).is_absolute():
            settings = settings.model_copy(update={"path": config.resolve(settings.path)})
        return TSDB(settings, clock=self.clock, registry=self.registry)

    def _collector_sources(self, config: SoulwatchConfig) -> list[Source]:
        sources: list[Source] = []
        sc = config.collectors.soulcaster
        hours_used: Callable[[], float] | None = None
        if sc is not None:
            if sc.redis_url:
                reader: Any = RedisPyReader(sc.redis_url)
            elif sc.upstash_rest_url and sc.upstash_rest_token:
                reader = UpstashRestReader(sc.upstash_rest_url, sc.upstash_rest_token)
            else:
                raise ConfigError("collectors.soulcaster needs redis_url or upstash_rest_url")
            collector = SoulcasterCollector(reader, sc, clock=self.clock)
            # Sandbox-hours this month come from the agent jobs' durations.
            hours_used = collector.sandbox_hours_this_month
            sources.append(
                CollectorSource(
                    collector, self.storage, interval=sc.interval_seconds, clock=self.clock
                )
            )
        e2b = config.collectors.e2b
        if e2b is not None:
            sources.append(
                CollectorSource(
                    E2BCollector(e2b, hours_used=hours_used),
                    self.storage,
                    interval=e2b.interval_seconds,
                    timeout=e2b.timeout_seconds,
                    clock=self.clock,
                )
            )
        if self.otlp is not None:
            sources.append(self.otlp.source(self.storage, self.clock))
        if self.rum is not None:
            sources.append(
                CollectorSource(
                    self.rum, self.storage, interval=config.rum.interval, clock=self.clock
                )
            )
        return sources

    def _evaluation_phase(self, interval: float) -> float | None:
        """Where a rule group of ``interval`` evaluates: just after the sources that feed it.

        Every scrape target, probe and collector runs at a fixed phase of its
        interval; a group evaluating shortly after the last of those sharing
        its interval sees every one's newest sample, so a failure is evaluated
        within a moment of being scraped instead of up to an interval later.
        ``rule_evaluation_phase: spread`` keeps Prometheus's hash-spread offsets.
        """
        if self._phase_mode != "after_sources":
            return None
        sources = [
            *((t.key, t.interval) for t in self.scrape.targets),
            *((p.key, p.interval) for p in self.probes.sources),
            *((c.key, c.interval) for c in self.collectors.sources),
        ]
        phases = [phase(key, interval) for key, every in sources if abs(every - interval) < 1e-6]
        if not phases:
            return None
        # The margin lets the last source's run (a refused connection, a quick scrape) finish.
        return max(phases) + min(1.0, interval / 10)

    def _probe_statuses(self) -> list[tuple[str, SourceStatus]]:
        return sorted(self.probes.statuses().items())

    def _target_statuses(self) -> list[Any]:
        return [(t.status, t.config.interval, t.config.timeout) for t in self.scrape.targets]

    # -- loops ------------------------------------------------------------------------

    def _spawn(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tasks[name] = asyncio.get_running_loop().create_task(loop(), name=name)

    async def _cancel_tasks(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def _every(
        self, name: str, interval: Callable[[], float], step: Callable[[], Awaitable[None]]
    ) -> None:
        while True:
            await self.clock.sleep(interval())
            try:
                await step()
            except (SoulwatchError, OSError) as exc:
                # The loop must survive a failing step: record it and go on.
                self.metrics.loop_errors.labels(loop=name).inc()
                _log.warning("loop step failed", loop=name, error=str(exc))

    async def _heartbeat_loop(self) -> None:
        def interval() -> float:
            hb = self.config.heartbeats.evaluation_interval
            return hb if hb is not None else self.config.global_.evaluation_interval

        async def step() -> None:
            flips = await self._blocking(self.heartbeats.evaluate, self.clock.time(), self.storage)
            for check, flip in flips:
                _log.info(
                    "heartbeat status changed",
                    check=check.name,
                    old=flip.old.value,
                    new=flip.new.value,
                )

        await self._blocking(self.heartbeats.evaluate, self.clock.time(), self.storage)
        await self._every("heartbeats", interval, step)

    async def _maintenance_loop(self) -> None:
        async def step() -> None:
            await self._blocking(self.storage.maintain)
            await self._blocking(self.silences.prune)

        await self._every("tsdb-maintenance", lambda: 60.0, step)

    async def _loop_lag(self) -> None:
        # Real time on purpose: this measures the real event loop, not the monitor's clock.
        loop = asyncio.get_running_loop()
        while True:
            expected = loop.time() + 0.5
            await asyncio.sleep(0.5)
            self.metrics.loop_lag.set(max(0.0, loop.time() - expected))

    async def _deadman_loop(self) -> None:
        async def step() -> None:
            url = self.config.self_monitoring.resolved_deadman_url()
            if not url:
                return
            try:
                r = await self._http.get(url, timeout=self.config.self_monitoring.deadman_timeout)
                result = "success" if r.is_success else "failure"
            except httpx.HTTPError:
                result = "failure"
            self.metrics.deadman.labels(result=result).inc()

        await step()
        await self._every("deadman", lambda: self.config.self_monitoring.interval, step)

    # -- status ---------------------------------------------------------------------------

    def health(self) -> JSONDict:
        """soulwatch's own health for ``/health``."""
        targets = self.scrape.statuses() if self._started else []
        failed = [
            name for name, task in self._tasks.items() if task.done() and not task.cancelled()
        ]
        status = "ok" if self._started and not self._stopping and not failed else "degraded"
        return {
            "status": status,
            "version": __version__,
            "targets": {"total": len(targets), "up": sum(t.health.value == "up" for t in targets)},
            "rule_groups": len(self._rule_specs),
            "heartbeat_checks": len(self.heartbeats.checks()) if self._started else 0,
            "failed_loops": failed,
            "remote_write": self.remote_write.status() if self._started else [],
            "time": self.clock.time(),
        }

    def app(self) -> Any:
        """The ASGI app (after :meth:`start`)."""
        return create_app(self.ctx)
