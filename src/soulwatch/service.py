"""One monitor: the owner of its components, from start to stop.

:class:`Monitor` is thin on purpose. :func:`~soulwatch.components.build`
opens and builds every component of a config under one exit stack (a start
that fails half-way closes what it opened and releases the data directory);
:class:`~soulwatch.reloader.Reloader` applies new configs, keeping what did
not change; :meth:`Monitor.stop` unwinds the stack, each step bounded in time.
Blocking work runs through one :mod:`~soulwatch.runner` handed to every
component: worker threads on a real clock, inline on a simulated one.

:func:`soulwatch.server.serve` runs a monitor behind uvicorn.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog
from prometheus_client import CollectorRegistry

from soulwatch import __version__
from soulwatch.alert_path import NotifierWrapper
from soulwatch.alerting.actions import ActionRunner
from soulwatch.alerting.alertmanagers import AlertmanagerSender
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.outbox import Outbox
from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.app import create_app
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.clock import Clock, SystemClock
from soulwatch.components import Components, build
from soulwatch.config import SoulwatchConfig, load_config
from soulwatch.exceptions import ConfigError, SoulwatchError
from soulwatch.reloader import Reloader
from soulwatch.rules.evaluator import RuleManager
from soulwatch.runner import BlockingRunner, ThreadRunner, run_inline, runner_for
from soulwatch.sources.heartbeats import HeartbeatMonitor
from soulwatch.sources.scrape.manager import ScrapeManager
from soulwatch.tsdb.db import TSDB

__all__ = ["BlockingRunner", "Monitor", "run_inline"]

_log = structlog.get_logger("soulwatch.service")


class Monitor:
    """Every component of one soulwatch, wired from one config.

    ``clock`` drives every schedule (a :class:`~soulwatch.clock.SimulatedClock`
    runs the whole monitor in tests); ``transport`` replaces the HTTP transport
    of outbound clients (notifications, dead man's switch); ``run_blocking``
    runs blocking work (default: :func:`~soulwatch.runner.runner_for` the
    clock); ``wrap_notifiers`` wraps the notifiers of every routing (scenario
    runs record what would be sent).
    """

    def __init__(
        self,
        config: SoulwatchConfig,
        *,
        clock: Clock | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        run_blocking: BlockingRunner | None = None,
        wrap_notifiers: NotifierWrapper | None = None,
    ) -> None:
        self._config = config
        self.clock: Clock = clock or SystemClock()
        self._transport = transport
        self._given_runner = run_blocking
        # The runner this monitor made for itself (closed at stop), if any.
        self._own_runner: ThreadRunner | None = None
        self._wrap_notifiers = wrap_notifiers
        self._parts: Components | None = None
        self._reloader: Reloader | None = None
        self._stopping = False

    # -- lifespan -----------------------------------------------------------------

    async def start(self) -> None:
        """Open the stores and start every loop; on failure, close what was opened."""
        if self._parts is not None:
            raise SoulwatchError("this monitor has already been started")
        runner = self._given_runner or runner_for(self.clock)
        if isinstance(runner, ThreadRunner) and runner is not self._given_runner:
            self._own_runner = runner
        try:
            parts = await build(
                self._config,
                clock=self.clock,
                runner=runner,
                transport=self._transport,
                wrap_notifiers=self._wrap_notifiers,
                reload=self.reload,
                health=self.health,
                ready=lambda: (
                    self._parts is not None
                    and self._parts.running
                    and not self._parts.store_health.failing()
                ),
            )
            try:
                await parts.start()
            except BaseException:
                await parts.aclose()
                raise
        except BaseException:
            self._close_runner()
            raise
        self._parts = parts
        self._reloader = Reloader(parts, reread=self._reread)
        _log.info(
            "soulwatch started",
            data_dir=str(parts.data_dir),
            targets=len(parts.scrape.targets),
            rule_groups=len(parts.rules.groups()),
            heartbeat_checks=len(parts.heartbeats.checks()),
        )

    async def stop(self) -> None:
        """Stop every loop and close every store; each step is bounded in time."""
        if self._parts is None or self._stopping:
            return
        self._stopping = True
        await self._parts.aclose()
        self._close_runner()
        _log.info("soulwatch stopped")

    def _close_runner(self) -> None:
        if self._own_runner is not None:
            self._own_runner.close()
            self._own_runner = None

    async def reload(self, config: SoulwatchConfig | None = None) -> None:
        """Apply a new config (re-read from its file when not given); see :class:`Reloader`."""
        if self._reloader is None:
            raise ConfigError("the monitor is not running")
        await self._reloader.reload(config)

    def _reread(self) -> SoulwatchConfig:
        source = self.config.source
        if source is None:
            raise ConfigError("this monitor was not started from a config file")
        new = load_config(source)
        # Command-line overrides stay in force across reloads.
        return new.with_overrides(
            data_dir=self.config.data_dir,
            listen=self.config.listen,
            enable_features=self.config.enable_features,
            agent=self.config.mode == "agent",
        )

    # -- what callers read --------------------------------------------------------------

    @property
    def parts(self) -> Components:
        """The running components (after :meth:`start`)."""
        if self._parts is None:
            raise SoulwatchError("the monitor has not been started")
        return self._parts

    @property
    def config(self) -> SoulwatchConfig:
        """The configuration in force."""
        return self._parts.config if self._parts is not None else self._config

    @property
    def registry(self) -> CollectorRegistry:
        """The self-metrics registry."""
        return self.parts.registry

    @property
    def storage(self) -> TSDB:
        """The embedded TSDB."""
        return self.parts.storage

    @property
    def ctx(self) -> ApiContext:
        """What the HTTP API serves from."""
        return self.parts.ctx

    @property
    def heartbeats(self) -> HeartbeatMonitor:
        """The heartbeat checks."""
        return self.parts.heartbeats

    @property
    def scrape(self) -> ScrapeManager:
        """The scrape jobs."""
        return self.parts.scrape

    @property
    def rules(self) -> RuleManager:
        """The rule groups."""
        return self.parts.rules

    @property
    def silences(self) -> SilenceStore:
        """The silences."""
        return self.parts.silences

    @property
    def outbox(self) -> Outbox:
        """The notification outbox."""
        return self.parts.outbox

    @property
    def am_sender(self) -> AlertmanagerSender:
        """The sender to the configured Alertmanagers."""
        return self.parts.am_sender

    @property
    def dispatcher(self) -> Dispatcher | None:
        """The current dispatcher (``None`` without routing)."""
        return self.parts.alerts.dispatcher

    @property
    def actions(self) -> ActionRunner | None:
        """The current action runner (``None`` without actions)."""
        return self.parts.alerts.actions

    def health(self) -> JSONDict:
        """soulwatch's own health for ``/health``."""
        parts = self._parts
        running = parts is not None and parts.running and not self._stopping
        failed = parts.tasks.failed() if parts is not None else []
        targets = parts.scrape.statuses() if parts is not None else []
        stores = parts.store_health.failures() if parts is not None and parts.running else {}
        return {
            "status": "ok" if running and not failed and not stores else "degraded",
            "mode": self.config.mode,
            "failing_stores": {name: f.error for name, f in stores.items()},
            "failing_since": {name: f.since for name, f in stores.items()},
            "version": __version__,
            "targets": {"total": len(targets), "up": sum(t.health.value == "up" for t in targets)},
            "rule_groups": len(parts.rules.groups()) if parts is not None else 0,
            "heartbeat_checks": len(parts.heartbeats.checks()) if parts is not None else 0,
            "failed_loops": failed,
            "remote_write": parts.remote_write.status() if parts is not None else [],
            "time": self.clock.time(),
        }

    def app(self) -> Any:
        """The ASGI app (after :meth:`start`)."""
        return create_app(self.parts.ctx)
