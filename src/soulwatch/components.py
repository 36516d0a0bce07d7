"""Every component of one monitor, built from one config under one :class:`AsyncExitStack`.

:func:`build` opens the data directory's stores and builds the engine, the
sources, the rule manager and the alert path. Each thing it opens is pushed
onto the :class:`Components`' exit stack as it is opened, so a build that
fails half-way (an unreadable CA file, a collector without a Redis URL)
closes exactly what it had opened, the data-directory lock included, before
the error reaches the caller. :meth:`Components.start` starts the loops and
pushes their stops onto the same stack; :meth:`Components.aclose` unwinds it
all in reverse order, each step bounded in time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.alert_path import AlertPath, NotifierWrapper
from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.alertmanagers import AlertmanagerSender, FanOutSink
from soulwatch.alerting.intake import DispatcherIntake
from soulwatch.alerting.notifiers.soulcaster import MonitorEvidence
from soulwatch.alerting.outbox import ForwardingListener, Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.context import ApiContext
from soulwatch.api.incidents import DispatchIncidentsView
from soulwatch.api.status import redact
from soulwatch.api.views import (
    MonitorRuntime,
    RuleManagerView,
    ScrapeView,
    SilenceStoreView,
)
from soulwatch.clock import Clock
from soulwatch.config import SoulwatchConfig
from soulwatch.datadir import secure_data_dir
from soulwatch.exceptions import SoulwatchError
from soulwatch.ha.coordinator import HaCoordinator
from soulwatch.ha.wiring import build_ha
from soulwatch.housekeeping import (
    MAINTENANCE_INTERVAL,
    STORE_CHECK_INTERVAL,
    Periodic,
    SelfMetrics,
    heartbeat_interval,
    measure_loop_lag,
    ping_deadman,
)
from soulwatch.otlp.intake import OtlpIntake
from soulwatch.promql.engine import Engine
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.remote.agent import AgentEngine, AgentStorage
from soulwatch.remote.manager import RemoteWriteManager
from soulwatch.remote.query import RemoteQueryEngine, ruler_mode
from soulwatch.rules.evaluator import RESEND_DELAY_S, RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.rum import RumIntake, RumRecorder
from soulwatch.runner import QUERY_WORKERS, BlockingRunner, ThreadRunner, expose
from soulwatch.sources.base import Scheduler, Source, phase
from soulwatch.sources.collectors.source import CollectorSource
from soulwatch.sources.collectors.wiring import FailedJobsFeed, collector_sources
from soulwatch.sources.heartbeats import HeartbeatMonitor, HeartbeatStore
from soulwatch.sources.probes.manager import ProbeManager
from soulwatch.sources.scrape.manager import ScrapeManager
from soulwatch.store_health import StoreHealth
from soulwatch.tsdb.db import TSDB
from soulwatch.wiring import check_rules, data_dir_of, routing_of

_log = structlog.get_logger("soulwatch.service")

#: How long each step of a stop may take before the next one starts.
STOP_STAGE_TIMEOUT = 5.0


class Tasks:
    """The monitor's long-running tasks by name; :meth:`cancel` ends them all."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def spawn(
        self, name: str, loop: Callable[[], Coroutine[Any, Any, None]], *, once: bool = False
    ) -> None:
        """Run ``loop`` as the task ``name``; a ``once`` task is forgotten when it ends."""
        task = asyncio.get_running_loop().create_task(loop(), name=name)
        self._tasks[name] = task
        if once:
            task.add_done_callback(lambda _: self._tasks.pop(name, None))

    async def cancel(self, name: str | None = None) -> None:
        """Cancel the task ``name`` (every task without a name) and wait for it to end."""
        names = [name] if name is not None else list(self._tasks)
        tasks = [t for n in names if (t := self._tasks.pop(n, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def failed(self) -> list[str]:
        """Names of tasks that ended by themselves (a loop that crashed)."""
        return [n for n, t in self._tasks.items() if t.done() and not t.cancelled()]


@dataclass
class Components:
    """The running parts of one monitor; built by :func:`build`, closed by :meth:`aclose`.

    ``config`` is the configuration in force, ``last_reload`` whether the
    last (re)load succeeded and when the last one that did was; both change
    only through :meth:`adopt` and :meth:`record_reload`. Every other field
    keeps its object for the life of the monitor.
    """

    config: SoulwatchConfig
    clock: Clock
    runner: BlockingRunner
    registry: CollectorRegistry
    metrics: SelfMetrics
    data_dir: Path
    http: httpx.AsyncClient
    storage: TSDB
    engine: Engine
    heartbeats: HeartbeatMonitor
    silences: SilenceStore
    outbox: Outbox
    alerts: AlertPath
    scrape: ScrapeManager
    probes: ProbeManager
    collectors: Scheduler
    rules: RuleManager
    housekeeping: Scheduler
    ctx: ApiContext
    stack: contextlib.AsyncExitStack
    tasks: Tasks
    acks: AckStore
    am_sender: AlertmanagerSender
    failed_jobs: FailedJobsFeed
    store_health: StoreHealth
    remote_write: RemoteWriteManager
    rum: RumRecorder | None = None
    otlp: OtlpIntake | None = None
    #: ruler mode (``query.remote``): the engine rules, console and API query
    remote_query: RemoteQueryEngine | None = None
    ha: HaCoordinator | None = None
    running: bool = False
    last_reload: tuple[bool, float] = (False, 0.0)

    async def start(self) -> None:
        """Start every loop (their stops are already on the exit stack)."""
        self.scrape.start()
        self.probes.start()
        self.collectors.start()
        await self.rules.start()
        if self.ha is not None:
            # The first tick decides leader, standby or solo before anything is sent.
            await self.ha.tick()
            self.tasks.spawn("ha", self.ha.run)
        self.tasks.spawn("outbox", self.outbox.run)
        self.tasks.spawn("alertmanagers", self.am_sender.run)
        if self.remote_write.queues:
            self.tasks.spawn("remote-write", self.remote_write.run)
        self.alerts.start(self.tasks)
        await self.runner(self.heartbeats.evaluate, self.clock.time(), self.storage)
        self.housekeeping.start()
        # The outside watcher hears from a new monitor at once, then every interval.
        self.tasks.spawn(
            "deadman-start", lambda: ping_deadman(self.config, self.http, self.metrics), once=True
        )
        self.tasks.spawn("loop-lag", lambda: measure_loop_lag(self.metrics))
        self.running = True
        self.record_reload(ok=True)

    def adopt(self, config: SoulwatchConfig) -> None:
        """Put a reloaded ``config`` in force, once every part has taken it."""
        self.config = config

    def record_reload(self, *, ok: bool) -> None:
        """Record a (re)load's outcome: a failed one keeps the time of the last that worked."""
        now = self.clock.time()
        self.metrics.reload_ok.set(1 if ok else 0)
        if ok:
            self.metrics.reload_time.set(now)
        self.last_reload = (ok, now if ok else self.last_reload[1])

    def scheduled_sources(self, config: SoulwatchConfig) -> list[Source]:
        """The collectors' scheduler's sources for ``config``: collectors, OTLP and RUM."""
        return collector_sources_of(
            config,
            storage=self.storage,
            clock=self.clock,
            runner=self.runner,
            failed_jobs=self.failed_jobs,
            rum=self.rum,
            otlp=self.otlp,
        )

    async def aclose(self) -> None:
        """Stop every loop and close every store, in the reverse order of opening."""
        self.running = False
        await self.stack.aclose()

    def evaluation_phase(self, interval: float) -> float | None:
        """Where a rule group of ``interval`` evaluates: just after the sources that feed it.

        Every scrape target, probe and collector runs at a fixed phase of its
        interval; a group evaluating shortly after the last of those sharing
        its interval sees every one's newest sample, so a failure is evaluated
        within a moment of being scraped instead of up to an interval later.
        ``rule_evaluation_phase: spread`` keeps Prometheus's hash-spread offsets.
        """
        if self.config.rule_evaluation_phase != "after_sources":
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


async def _bounded(name: str, stage: Callable[[], Awaitable[Any]]) -> None:
    """One step of a stop: bounded in time, and a failure does not stop the next steps."""
    try:
        await asyncio.wait_for(stage(), STOP_STAGE_TIMEOUT)
    except TimeoutError:
        _log.warning("stop stage timed out", stage=name, timeout=STOP_STAGE_TIMEOUT)
    except (SoulwatchError, OSError) as exc:
        _log.warning("stop stage failed", stage=name, error=str(exc))


def sender_settings(config: SoulwatchConfig) -> dict[str, Any]:
    """What the Alertmanager sender takes from ``config`` besides the Alertmanagers."""
    return {
        "external_labels": dict(config.global_.external_labels),
        "alert_relabel_configs": config.alerting.alert_relabel_configs,
        # Prometheus's ValidUntil: four times the longer of resend delay and interval.
        "valid_for": 4 * max(RESEND_DELAY_S, config.global_.evaluation_interval),
    }


def collector_sources_of(
    config: SoulwatchConfig,
    *,
    storage: TSDB,
    clock: Clock,
    runner: BlockingRunner,
    failed_jobs: FailedJobsFeed,
    rum: RumRecorder | None,
    otlp: OtlpIntake | None,
) -> list[Source]:
    """Every source the collectors' scheduler runs for ``config``."""
    sources = collector_sources(
        config.collectors.soulcaster,
        config.collectors.e2b,
        storage,
        clock,
        runner,
        vercel=config.collectors.vercel,
        failed_jobs=failed_jobs,
    )
    if otlp is not None:
        sources.append(otlp.source(storage, clock))
    if rum is not None:
        sources.append(
            CollectorSource(rum, storage, interval=config.rum.interval, clock=clock, runner=runner)
        )
    return sources


def housekeeping_work(c: Components, config: SoulwatchConfig) -> list[Periodic]:
    """The monitor's own periodic work for ``config`` (sources of ``c.housekeeping``)."""

    async def heartbeats() -> None:
        flips = await c.runner(c.heartbeats.evaluate, c.clock.time(), c.storage)
        for check, flip in flips:
            _log.info(
                "heartbeat status changed", check=check.name, old=flip.old.value, new=flip.new.value
            )
        # Here, not in a ping's commit: a ping never waits for the disk's sync.
        await c.runner(c.heartbeats.checkpoint)

    async def maintenance() -> None:
        await c.runner(c.storage.maintain)
        await c.runner(c.silences.prune)

    async def deadman() -> None:
        await ping_deadman(c.config, c.http, c.metrics)

    async def stores() -> None:
        # Stores written only on request learn here that space is back; asking
        # health stamps when a store started failing and logs the change.
        await c.runner(c.silences.recheck)
        await c.runner(c.acks.recheck)
        c.store_health.failures()

    work = [
        Periodic("heartbeats", heartbeat_interval(config), heartbeats, c.metrics),
        Periodic("tsdb-maintenance", MAINTENANCE_INTERVAL, maintenance, c.metrics),
        Periodic("store-health", STORE_CHECK_INTERVAL, stores, c.metrics),
    ]
    if config.self_monitoring.resolved_deadman_url():
        work.append(Periodic("deadman", config.self_monitoring.interval, deadman, c.metrics))
    return work


async def build(
    config: SoulwatchConfig,
    *,
    clock: Clock,
    runner: BlockingRunner,
    transport: httpx.AsyncBaseTransport | None = None,
    wrap_notifiers: NotifierWrapper | None = None,
    reload: Callable[[], Awaitable[None]] | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
    ready: Callable[[], bool] = lambda: True,
) -> Components:
    """Open and build every component of ``config``; nothing runs until :meth:`~Components.start`.

    On any failure, what was opened is closed again before the error is raised.
    """
    specs = check_rules(config)
    stack = contextlib.AsyncExitStack()
    push = stack.push_async_callback
    try:
        registry = CollectorRegistry()
        metrics = SelfMetrics(registry)
        # The API's queries run on the same policy; on threads, in a pool of their own.
        queries = runner
        if isinstance(runner, ThreadRunner):
            query_pool = ThreadRunner(QUERY_WORKERS, name="soulwatch-query")
            stack.callback(query_pool.close)
            expose(registry, {"work": runner, "queries": query_pool})
            queries = query_pool
        data_dir = data_dir_of(config)
        secure_data_dir(data_dir)
        http = httpx.AsyncClient(transport=transport, timeout=10.0, trust_env=False)
        push(_bounded, "http", http.aclose)
        storage = await runner(_open_storage, config, data_dir, clock, registry)
        push(runner, storage.close)
        # It reads what the TSDB committed, so it stops (sending what it can) before storage closes.
        remote_write = RemoteWriteManager(
            config.remote_write,
            storage,
            state_dir=data_dir / "remote_write",
            external_labels=config.global_.external_labels,
            clock=clock,
            run_blocking=runner,
            registry=registry,
            transport=transport,
            # Late-bound: the scrape targets (built below) expose what their families are.
            metadata=lambda: ((n, m) for t in scrape.targets for n, m in t.metadata.items()),
        )
        push(_bounded, "remote-write", remote_write.close)
        engine = Engine(
            storage,
            clock=clock,
            lookback_delta_ms=round(config.api.lookback_delta * 1000),
            timeout_s=config.api.query_timeout,
            default_subquery_step_ms=round(config.global_.evaluation_interval * 1000),
            features=config.enable_features,
        )
        # Ruler mode: rules, console and API query the remote; results still land here.
        ruler = ruler_mode(config.query.remote, storage, engine)
        if ruler.remote is not None:
            push(runner, ruler.remote.close)
        hb_store = await runner(HeartbeatStore, data_dir / "heartbeats.sqlite")
        push(runner, hb_store.close)
        heartbeats = HeartbeatMonitor(hb_store, config.heartbeats)
        silences = SilenceStore(
            data_dir / "silences.sqlite",
            clock,
            max_duration=config.silences.max_duration,
            retention=config.silences.retention,
        )
        push(runner, silences.close)
        acks = AckStore(data_dir / "silences.sqlite", clock)
        push(runner, acks.close)
        ha = build_ha(
            config, clock=clock, runner=runner, silences=silences, acks=acks, registry=registry
        )
        if ha is not None:
            # Unwound after the tasks stop: the lease is given back once nothing sends.
            push(_bounded, "ha-redis", ha.aclose)
            push(_bounded, "ha-lease", ha.release)
        routing = routing_of(config)
        # Asked about only after the build (health, /metrics), so the stores are bound late.
        store_health = StoreHealth(
            {
                "wal": lambda: storage.wal_error,
                "outbox": lambda: outbox.last_error,
                "alert_state": lambda: state_store.last_error,
                "silences": lambda: silences.last_error,
                "acknowledgements": lambda: acks.last_error,
                **ruler.health_checks,
            },
            clock=clock.time,
            registry=registry,
        )
        outbox = Outbox(
            data_dir / "outbox.sqlite",
            clock=clock,
            # Late-bound: delivery outcomes reach whichever dispatcher is current.
            listener=ForwardingListener(lambda: alerts.dispatcher),
            store_failures=store_health.failing,
            registry=registry,
            settings=routing.delivery if routing is not None else None,
            gate=ha,
        )
        push(runner, outbox.close)
        if ha is not None:
            ha.on_promote(outbox.release_held)
        failed_jobs = FailedJobsFeed()
        alerts = AlertPath(
            outbox=outbox,
            silences=silences,
            clock=clock,
            client=http,
            data_dir=data_dir,
            runner=runner,
            wrap_notifiers=wrap_notifiers,
            acks=acks,
            evidence=MonitorEvidence(ruler.engine, failed_jobs=failed_jobs),
        )
        push(_bounded, "alerting", alerts.aclose)
        alerts.install(routing, alerts.prepare(routing))
        state_store = await runner(AlertStateStore.in_data_dir, data_dir)
        push(runner, state_store.close)
        am_sender = AlertmanagerSender(
            config.alerting.alertmanagers, clock=clock, registry=registry, **sender_settings(config)
        )
        push(_bounded, "alertmanagers", am_sender.aclose)
        # RUM aggregates and OTLP series live for the whole run: a reload keeps them.
        rum = RumRecorder(config.rum, clock.time) if config.rum.sites else None
        otlp = OtlpIntake(config.otlp) if config.otlp.enabled else None
        # Sources: their stops write staleness markers, so they run while storage is open.
        sources = collector_sources_of(
            config,
            storage=storage,
            clock=clock,
            runner=runner,
            failed_jobs=failed_jobs,
            rum=rum,
            otlp=otlp,
        )
        collectors = Scheduler(clock, sources)
        push(_bounded, "collectors", collectors.stop)
        scrape = ScrapeManager(
            config.resolved_scrape_configs(), storage, clock=clock, runner=runner
        )
        push(_bounded, "scrape", scrape.stop)
        probes = ProbeManager(config.probes, storage, clock=clock, runner=runner)
        push(_bounded, "probes", probes.stop)
        rules = RuleManager(
            engine=ruler.engine,
            storage=ruler.storage,
            sink=FanOutSink(alerts, am_sender),
            clock=clock,
            store=state_store,
            registry=registry,
            default_interval_s=config.global_.evaluation_interval,
            external_labels=config.global_.external_labels,
            external_url=config.external_url or f"http://{config.listen}",
            validate_expr=parse_promql,
            # Late-bound: the components exist once the groups are placed (below).
            phase_for=lambda interval: components.evaluation_phase(interval),  # noqa: PLW0108
            runner=runner,
        )
        push(_bounded, "rules", rules.stop)
        # The monitor's own work runs on the ticks of its start, as scenario files expect.
        work = Scheduler(clock, phased=False)
        push(_bounded, "housekeeping", work.stop)
        tasks = Tasks()
        push(_bounded, "tasks", tasks.cancel)
        scrape_view = ScrapeView(
            lambda: [(t.status, t.config.interval, t.config.timeout) for t in scrape.targets],
            lambda: sorted(probes.statuses().items()),
            lambda: [(t.status.labels, t.metadata) for t in scrape.targets],
        )
        # An agent's API and console read nothing: its samples leave by remote write only.
        agent = config.mode == "agent"
        ctx = ApiContext(
            storage=AgentStorage(storage) if agent else storage,
            engine=AgentEngine(engine.lookback_delta_ms) if agent else ruler.engine,
            clock=clock,
            api=config.api,
            auth=config.auth,
            heartbeats=heartbeats,
            rules=RuleManagerView(rules, lambda: components.config.source_as_given),
            targets=scrape_view,
            metadata=scrape_view,
            runtime=MonitorRuntime(
                started_at=clock.time(),
                config=lambda: components.config,
                last_reload=lambda: components.last_reload,
                storage_path=str(storage.config.path),
            ),
            receivers=alerts,
            silences=SilenceStoreView(silences),
            incidents=DispatchIncidentsView(
                dispatcher=lambda: alerts.dispatcher,
                routing=lambda: alerts.routing,
                outbox=outbox,
                silences=silences,
                acks=acks,
                actions=lambda: alerts.actions,
                clock=clock,
            ),
            reload=reload,
            config=config,
            ready=ready,
            metrics=lambda: generate_latest(registry),
            health=health,
            external_labels=tuple(config.global_.external_labels.items()),
            rum=RumIntake(config.rum, rum, clock) if rum is not None else None,
            otlp=otlp,
            alert_intake=DispatcherIntake(
                dispatcher=lambda: alerts.dispatcher,
                routing=lambda: alerts.routing,
                silences=silences,
                clock=clock,
                started_at=clock.time(),
                redact=redact,
            ),
            alertmanager_urls=lambda: am_sender.urls,
            runner=queries,
            ha=ha.status if ha is not None else None,
            index=ruler.index,
            registry=registry,
        )
        components = Components(
            config=config,
            clock=clock,
            runner=runner,
            registry=registry,
            metrics=metrics,
            data_dir=data_dir,
            http=http,
            storage=storage,
            engine=engine,
            heartbeats=heartbeats,
            silences=silences,
            outbox=outbox,
            alerts=alerts,
            scrape=scrape,
            probes=probes,
            collectors=collectors,
            rules=rules,
            housekeeping=work,
            ctx=ctx,
            stack=stack,
            tasks=tasks,
            acks=acks,
            am_sender=am_sender,
            failed_jobs=failed_jobs,
            store_health=store_health,
            remote_write=remote_write,
            rum=rum,
            otlp=otlp,
            remote_query=ruler.remote,
            ha=ha,
        )
        for periodic in housekeeping_work(components, config):
            work.add(periodic)
        # Groups are placed once the sources exist: they evaluate right after them.
        rules.set_groups(specs)
        return components
    except BaseException:
        await stack.aclose()
        raise


def _open_storage(
    config: SoulwatchConfig, data_dir: Path, clock: Clock, registry: CollectorRegistry
) -> TSDB:
    settings = config.storage
    if "path" not in settings.model_fields_set:
        settings = settings.model_copy(update={"path": data_dir / "tsdb"})
    elif not Path(settings.path).is_absolute():
        settings = settings.model_copy(update={"path": config.resolve(settings.path)})
    # An agent's TSDB is its WAL alone, kept until every remote_write queue is past it.
    return TSDB(settings, clock=clock, registry=registry, wal_only=config.mode == "agent")
