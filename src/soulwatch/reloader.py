"""Applying a new config to running :class:`~soulwatch.components.Components`.

:meth:`Reloader.reload` validates all of the new config (rule files,
routing, scrape and probe jobs) and builds every new part before it touches
a running one, so a bad config raises :class:`ConfigError` and the old one
keeps running. Then, like Prometheus, it keeps what did not change:

* scrape and probe jobs whose config is unchanged keep their loops (no gap,
  no staleness marker); removed and changed jobs stop, and their series are
  marked stale at once;
* rule groups that are equal to their old selves keep running with their
  state and their schedule; removed rules' series are marked stale at once;
* when routing changed, the dispatcher is reconfigured in place: groups of
  unchanged routes keep their alerts and schedule, unchanged receivers their
  notifiers (:meth:`~soulwatch.alerting.dispatcher.Dispatcher.reconfigure`).

Listen address, data directory, storage settings and delivery settings need
a restart; a change to them is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import structlog

from soulwatch.alerting.config import DeliveryConfig
from soulwatch.components import Components, housekeeping_work, sender_settings
from soulwatch.config import SoulwatchConfig
from soulwatch.exceptions import ConfigError
from soulwatch.housekeeping import heartbeat_interval
from soulwatch.rules.model import GroupSpec
from soulwatch.wiring import check_rules, routing_of

_log = structlog.get_logger("soulwatch.reload")

#: How long a reload waits for rule evaluations in progress before it goes on.
RULES_IDLE_TIMEOUT = 30.0

#: Settings read once at start; a reload that changes them only warns.
RESTART_SETTINGS = (
    "listen",
    "data_dir",
    "storage",
    "enable_features",
    "remote_write",
    "query",
    "mode",
    "ha",
)


class Reloader:
    """Applies new configs to ``components``, one at a time.

    ``reread`` gives the config again from its source (SIGHUP, ``/-/reload``).
    """

    def __init__(self, components: Components, *, reread: Callable[[], SoulwatchConfig]) -> None:
        self._c = components
        self._reread = reread
        self._lock = asyncio.Lock()

    async def reload(self, config: SoulwatchConfig | None = None) -> None:
        """Apply ``config`` (re-read from its source when not given); raises ConfigError."""
        c = self._c
        async with self._lock:
            try:
                new = config if config is not None else await c.runner(self._reread)
                specs = check_rules(new)
                await self._apply(new, specs)
            except ConfigError as exc:
                c.record_reload(ok=False)
                _log.error("configuration not reloaded; the old one keeps running", error=str(exc))
                raise
            c.record_reload(ok=True)
            _log.info("configuration reloaded", rule_groups=len(specs))

    async def _apply(self, new: SoulwatchConfig, specs: list[GroupSpec]) -> None:
        """Swap in the parts that changed (``new`` is already valid)."""
        c = self._c
        old = c.config
        for key in RESTART_SETTINGS:
            if getattr(new, key) != getattr(old, key):
                _log.warning("setting changed; it takes effect after a restart", setting=key)
        routing = routing_of(new)
        if _delivery(new) != _delivery(old):
            # The outbox's retry policy is fixed when it opens.
            _log.warning(
                "setting changed; it takes effect after a restart", setting="alerting.delivery"
            )
        # Build every new part before touching a running one, so a failure here
        # (an unset url_env, an unreadable CA file) changes nothing.
        scrape = c.scrape.prepare(new.resolved_scrape_configs())
        probes = None
        try:
            probes = c.probes.prepare(new.probes)
            collectors = None
            if (new.collectors, new.rum.interval) != (old.collectors, old.rum.interval):
                collectors = c.scheduled_sources(new)
            delivery = None
            # Even when the routing reads the same: a secret file it names may have
            # changed. What did not change is kept (see AlertPath.prepare).
            if routing is not None or c.alerts.routing is not None:
                delivery = c.alerts.prepare(routing)  # last: it may open the action audit log
        except BaseException:
            await c.scrape.discard(scrape)
            if probes is not None:
                await c.probes.discard(probes)
            raise
        await c.scrape.apply(scrape)
        await c.probes.apply(probes)
        if scrape.added or scrape.removed or probes.added or probes.removed:
            _log.info(
                "scrape and probe jobs reloaded",
                kept=scrape.kept + probes.kept,
                started=scrape.added + probes.added,
                stopped=scrape.removed + probes.removed,
            )
        if collectors is not None:
            await c.collectors.replace(collectors)
        c.heartbeats.configure(new.heartbeats, now=c.clock.time())
        if delivery is not None:
            await c.alerts.replace(routing, delivery)
        c.am_sender.configure(new.alerting.alertmanagers, **sender_settings(new))
        c.silences.configure(
            max_duration=new.silences.max_duration, retention=new.silences.retention
        )
        c.adopt(new)
        if _housekeeping_key(new) != _housekeeping_key(old):
            await c.housekeeping.replace(housekeeping_work(c, new))
        # Between evaluations: a group's state is not copied while it is being evaluated.
        try:
            await c.rules.idle(timeout=RULES_IDLE_TIMEOUT)
        except TimeoutError:
            _log.warning("rule groups still evaluating; reloading them meanwhile")
        c.rules.set_groups(specs)
        c.ctx.configure(new)


def _delivery(config: SoulwatchConfig) -> DeliveryConfig:
    """The delivery settings the outbox runs with for ``config``."""
    return config.routing.delivery if config.routing is not None else DeliveryConfig()


def _housekeeping_key(config: SoulwatchConfig) -> tuple[object, ...]:
    """What the monitor's own periodic work depends on."""
    monitoring = config.self_monitoring
    return (
        heartbeat_interval(config),
        bool(monitoring.resolved_deadman_url()),
        monitoring.interval,
    )
