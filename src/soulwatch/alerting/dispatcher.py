"""The dispatcher: alerts in, notifications into the outbox, on Alertmanager's schedule.

It implements :class:`~soulwatch.alerts.AlertSink`. Each alert is routed;
for every route node it reaches it joins the aggregation group of that node
and its ``group_by`` labels. A new group waits ``group_wait`` before its first
flush (at once if its first alert started more than ``group_wait`` ago), then
flushes every ``group_interval``. A flush drops muted alerts (time intervals,
inhibition, silences, a pending auto-recovery) and asks the notification log,
per integration, whether anything changed: a new firing alert, newly resolved
alerts (with ``send_resolved``), all resolved, or ``repeat_interval`` passed.
That is Alertmanager's dispatch and dedup logic.

Beyond Alertmanager: when a silence, mute interval, inhibiting alert or
auto-recovery hold ends while an alert still fires, the group flushes at that
moment instead of at its next ``group_interval`` tick. ``NotificationFailing`` meta-alerts raised
by the outbox go to every receiver except the failing one: the dispatcher is the
outbox's :class:`~soulwatch.alerting.outbox.DeliveryListener` (its owner passes
it, through a forwarding listener, when it builds the outbox).

A reload that changes routing reconfigures the dispatcher in place
(:meth:`Dispatcher.reconfigure`): an aggregation group whose route is
unchanged keeps its alerts and its schedule (``group_wait`` already served,
the next ``group_interval`` tick); only the groups of changed or removed
routes are rebuilt, from the alerts the dispatcher knows.

All timing is on the injected clock, so the whole thing runs on a
:class:`~soulwatch.clock.SimulatedClock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.actions import ActionRun, ActionRunner
from soulwatch.alerting.config import AlertingConfig
from soulwatch.alerting.inhibit import Inhibitor
from soulwatch.alerting.message import (
    AlertInfo,
    Notification,
    Status,
    episode,
    idempotency_key,
)
from soulwatch.alerting.nflog import LogEntry, LogUpdate
from soulwatch.alerting.notifiers.factory import integration_id
from soulwatch.alerting.outbox import EnqueueItem, Outbox
from soulwatch.alerting.routing import RouteNode, RouteOptions, build_tree
from soulwatch.alerting.silences import SilenceStore
from soulwatch.alerting.timeintervals import interval_contains, next_change
from soulwatch.alerts import Alert
from soulwatch.clock import Clock
from soulwatch.exceptions import StorageError
from soulwatch.tsdb.model import Labels

META_ALERTNAME = "NotificationFailing"
_STORAGE_RETRY = 5.0


@dataclass
class _Group:
    key: str
    node: RouteNode
    labels: Labels
    due: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    has_flushed: bool = False
    inhibited: bool = False  # some alert was muted by inhibition at the last flush


@dataclass
class _Hold:
    until: float
    verify_after: float
    run: ActionRun | None = None


@dataclass(frozen=True)
class _Integration:
    id: str
    receiver: str
    kind: str
    send_resolved: bool


def _labels_str(labels: Labels) -> str:
    return "{" + ", ".join(f'{n}="{v}"' for n, v in labels) + "}"


class Dispatcher:
    """Routes, groups, mutes and deduplicates alerts, and writes notifications to the outbox."""

    def __init__(
        self,
        config: AlertingConfig,
        *,
        clock: Clock,
        outbox: Outbox,
        silences: SilenceStore | None = None,
        actions: ActionRunner | None = None,
        acks: AckStore | None = None,
    ) -> None:
        self._acks = acks
        self._clock = clock
        self._outbox = outbox
        self._silences = silences
        self._use(config, actions)
        self._alerts: dict[str, Alert] = {}
        self._updated: dict[str, float] = {}
        self._sticky: set[str] = set()
        self._groups: dict[str, _Group] = {}
        self._holds: dict[str, _Hold] = {}
        self._firing_cache: tuple[float, list[Alert]] | None = None
        #: the last error writing to the outbox (shown by the API), if any
        self.last_error: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        if silences is not None:
            silences.on_change(self._silences_changed)

    def _use(self, config: AlertingConfig, actions: ActionRunner | None) -> None:
        """Take ``config``'s routing tree, inhibition, time intervals and receivers."""
        self._config = config
        self._actions = actions
        self.tree = build_tree(config.route)
        self._inhibitor = Inhibitor(config.inhibit_rules)
        self._intervals = config.intervals()
        self._integrations: dict[str, list[_Integration]] = {
            r.name: [
                _Integration(integration_id(r.name, kind, i), r.name, kind, c.send_resolved)
                for kind, i, c in r.integrations()
            ]
            for r in config.receivers
        }

    async def reconfigure(self, config: AlertingConfig, *, actions: ActionRunner | None) -> None:
        """Route by ``config`` from now on, keeping the groups of unchanged routes.

        A group stays, with its alerts, its ``group_wait`` served and its next
        flush, when its route node is in the new tree with the same matchers
        and settings. The groups of changed and removed routes go; every alert
        the dispatcher knows is routed again, so it joins its new groups (which
        wait their ``group_wait``). The notification log still holds what each
        integration was told: nothing already sent is sent again. With a new
        action runner, actions still running on the old one finish first.
        """
        if actions is not self._actions:
            for task in list(self._tasks):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        old = {node.key: node for node in self.tree.walk()}
        self._use(config, actions)
        now = self._clock.time()
        unchanged = {
            node.key: node
            for node in self.tree.walk()
            if node.key in old and _same_route(old[node.key], node)
        }
        kept: dict[str, _Group] = {}
        for key, group in self._groups.items():
            node = unchanged.get(group.node.key)
            if node is not None:
                group.node = node
                kept[key] = group
        grouped = {fp for group in self._groups.values() for fp in group.alerts}
        self._groups = kept
        self._firing_cache = None
        for fp, alert in self._alerts.items():
            if fp not in grouped and self._resolved(alert, now, fp):
                continue  # resolved and already told: it belongs to no group any more
            nodes = self._nodes_for(alert)
            reached = {node.key for node in nodes}
            # An earlier sibling that changed may now take an alert an unchanged route had.
            for group in list(kept.values()):
                if fp in group.alerts and group.node.key not in reached:
                    del group.alerts[fp]
                    if not group.alerts:
                        del self._groups[group.key]
            for node in nodes:
                self._insert(node, alert, fp, now)
        self._wake.set()

    # --- AlertSink ---------------------------------------------------------------

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Accept firing and resolved alerts (re-sent every evaluation, as Prometheus does)."""
        now = self._clock.time()
        forward: dict[str, list[Alert]] = {}
        source_ended = False
        for alert in alerts:
            fp = alert.fingerprint
            previous = self._alerts.get(fp)
            if (
                alert.is_resolved(now)
                and previous is not None
                and not previous.is_resolved(now)
                and self._inhibitor.is_source(alert)
            ):
                source_ended = True
            self._alerts[fp] = alert
            self._updated[fp] = now
            newly_firing = not alert.is_resolved(now) and (
                previous is None
                or self._resolved(previous, now, fp)
                or previous.starts_at != alert.starts_at
            )
            if newly_firing:
                self._maybe_start_action(alert, now)
            for node in self._nodes_for(alert):
                for integ in self._integrations.get(node.options.receiver, []):
                    if integ.kind == "alertmanager":
                        forward.setdefault(integ.id, []).append(alert)
                self._insert(node, alert, fp, now)
        if forward:
            self._forward(forward, now)
        if source_ended:
            # An inhibiting alert resolved: what it muted goes out now, not at the next tick.
            for group in self._groups.values():
                if group.inhibited:
                    group.due = min(group.due, now)
        self._wake.set()

    # --- running -----------------------------------------------------------------

    async def run(self) -> None:
        """Flush groups when due, forever (cancel to stop)."""
        try:
            while True:
                self._wake.clear()
                await self.flush_due()
                due = min((g.due for g in self._groups.values()), default=None)
                timeout = None if due is None else max(0.0, due - self._clock.time())
                await self._wait(timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait(self, timeout: float | None) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        pending: set[asyncio.Future[Any]] = {waiter}
        if timeout is not None:
            pending.add(asyncio.ensure_future(self._clock.sleep(timeout)))
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in pending:
                fut.cancel()

    async def flush_due(self) -> None:
        """Flush every group whose time has come (the loop calls this; tests may too)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        now = self._clock.time()
        self._firing_cache = None
        flushed = False
        for group in sorted(self._groups.values(), key=lambda g: (g.due, g.key)):
            if group.due <= now:
                self._flush(group, now)
                flushed = True
        if flushed:
            self._prune(now)

    def groups(self) -> list[tuple[str, str, list[Alert]]]:
        """``(group key, receiver, alerts)`` of every aggregation group (for the API and UI)."""
        return [
            (g.key, g.node.options.receiver, list(g.alerts.values())) for g in self._groups.values()
        ]

    def alerts(self) -> list[Alert]:
        """Every alert the dispatcher currently knows."""
        return list(self._alerts.values())

    def updated_at(self, fingerprint: str) -> float | None:
        """When the alert with ``fingerprint`` was last received (for the alerts API)."""
        return self._updated.get(fingerprint)

    # --- grouping ----------------------------------------------------------------

    def _nodes_for(self, alert: Alert) -> list[RouteNode]:
        nodes = self.tree.match(alert.labels)
        if alert.name != META_ALERTNAME:
            return nodes
        failing = alert.labels.get("receiver")
        kept = [n for n in nodes if n.options.receiver != failing]
        if kept:
            return kept
        # The tree sends it only to the receiver that is failing: use all the others.
        return [
            RouteNode(
                key=f"{{}}/meta/{name}",
                matchers=[],
                options=RouteOptions(
                    receiver=name,
                    group_by=frozenset({"alertname", "receiver"}),
                    group_by_all=False,
                    group_wait=0.0,
                    group_interval=self.tree.options.group_interval,
                    repeat_interval=self.tree.options.repeat_interval,
                ),
                continue_=False,
            )
            for name, integs in self._integrations.items()
            if name != failing and integs
        ]

    def _insert(self, node: RouteNode, alert: Alert, fp: str, now: float) -> None:
        labels = node.group_labels(alert.labels)
        key = f"{node.key}:{_labels_str(labels)}"
        group = self._groups.get(key)
        previous = group.alerts.get(fp) if group is not None else None
        if (
            group is not None
            and previous is not None
            and previous.starts_at != alert.starts_at
            and self._effective(previous, now, fp).is_resolved(now)
        ):
            # A new episode would replace the last one's resolve before it went
            # out: send that resolve now rather than lose it.
            self._flush(group, now)
            group = self._groups.get(key)
        if group is None:
            group = _Group(key=key, node=node, labels=labels, due=now + node.options.group_wait)
            self._groups[key] = group
        group.alerts[fp] = alert
        # Alertmanager: flush at once if this alert has already waited out group_wait.
        if not group.has_flushed and alert.starts_at + node.options.group_wait < now:
            group.due = min(group.due, now)

    def _resolved(self, alert: Alert, now: float, fp: str | None = None) -> bool:
        if alert.is_resolved(now):
            return True
        fp = fp or alert.fingerprint
        if fp in self._sticky:
            return False
        # An alert no longer re-sent resolves after resolve_timeout, as in Alertmanager.
        updated = self._updated.get(fp, now)
        return now - updated >= self._config.global_.resolve_timeout

    def _effective(self, alert: Alert, now: float, fp: str | None = None) -> Alert:
        fp = fp or alert.fingerprint
        if alert.ends_at is None and self._resolved(alert, now, fp):
            ends = self._updated.get(fp, now) + self._config.global_.resolve_timeout
            return Alert(
                alert.labels,
                alert.annotations,
                alert.starts_at,
                ends,
                alert.generator_url,
                alert.value,
            )
        return alert

    # --- flushing ----------------------------------------------------------------

    def _flush(self, group: _Group, now: float) -> None:
        opts = group.node.options
        group.has_flushed = True
        group.due = now + opts.group_interval
        alerts = [(fp, self._effective(a, now, fp)) for fp, a in group.alerts.items()]
        wake = self._time_muted_until(opts, now)
        if wake is not False:
            if wake is not None:
                group.due = min(group.due, wake)
            return
        firing_all = self._firing_now(now) if self._config.inhibit_rules else []
        kept: list[tuple[str, Alert]] = []
        wakes: list[float] = []
        notes: dict[str, str] = {}
        group.inhibited = False
        for fp, alert in alerts:
            resolved = alert.is_resolved(now)
            if not resolved and self._inhibitor.is_inhibited(alert, firing_all, now):
                group.inhibited = True
                continue
            if self._silences is not None:
                ids = self._silences.mutes(alert.labels, now)
                if ids:
                    end = self._silences.next_transition(ids, now)
                    if end is not None and not resolved:
                        wakes.append(end)
                    continue
            hold = self._holds.get(fp)
            if hold is not None and not resolved:
                if now < hold.until:
                    wakes.append(hold.until)
                    continue
                if hold.run is not None:
                    notes[fp] = hold.run.note(hold.verify_after)
            if alert.name == META_ALERTNAME and alert.labels.get("receiver") == opts.receiver:
                continue
            kept.append((fp, alert))
        if wakes:
            group.due = min(group.due, *wakes)
        if kept:
            try:
                self._notify(group, kept, notes, now)
            except StorageError as exc:
                # Nothing was recorded as sent: retry this group soon, keep its alerts.
                self.last_error = str(exc)
                group.due = now + _STORAGE_RETRY
                return
        # Resolved alerts that were part of this flush leave the group, unless
        # they fired again meanwhile.
        for fp, alert in alerts:
            current = group.alerts.get(fp)
            if (
                alert.is_resolved(now)
                and current is not None
                and self._effective(current, now, fp).is_resolved(now)
            ):
                del group.alerts[fp]
        if not group.alerts:
            del self._groups[group.key]

    def _firing_now(self, now: float) -> list[Alert]:
        """Every firing alert (inhibition sources), computed once per flush round."""
        if self._firing_cache is None or self._firing_cache[0] != now:
            firing = [
                a
                for fp, a in self._alerts.items()
                if not self._effective(a, now, fp).is_resolved(now)
            ]
            self._firing_cache = (now, firing)
        return self._firing_cache[1]

    def _time_muted_until(self, opts: RouteOptions, now: float) -> float | bool | None:
        """``False`` when not muted; else when the mute may end (``None``: not within a week)."""
        muted = any(interval_contains(self._intervals[n], now) for n in opts.mute_time_intervals)
        if opts.active_time_intervals and not any(
            interval_contains(self._intervals[n], now) for n in opts.active_time_intervals
        ):
            muted = True
        if not muted:
            return False
        changes = [
            next_change(self._intervals[n], now)
            for n in (*opts.mute_time_intervals, *opts.active_time_intervals)
        ]
        known = [c for c in changes if c is not None]
        return min(known) if known else None

    def _notify(
        self, group: _Group, pairs: list[tuple[str, Alert]], notes: dict[str, str], now: float
    ) -> None:
        # The log records episodes, not fingerprints: the same alert firing
        # again after it resolved is news even if its resolve never went out.
        firing = frozenset(episode(fp, a.starts_at) for fp, a in pairs if not a.is_resolved(now))
        resolved = frozenset(episode(fp, a.starts_at) for fp, a in pairs if a.is_resolved(now))
        episodes = [(e, False) for e in firing] + [(e, True) for e in resolved]
        items: list[EnqueueItem] = []
        repeat = group.node.options.repeat_interval
        # An acknowledged episode is not repeated; anything newer in the group is.
        if self._acks and self._acks.holds_repeat(group.key, (a.starts_at for _, a in pairs)):
            repeat = math.inf
        for integ in self._integrations.get(group.node.options.receiver, []):
            if integ.kind == "alertmanager":
                continue
            entry = self._outbox.log_entry(integ.id, group.key, episodes)
            if not _needs_update(entry, firing, resolved, integ.send_resolved, repeat, now):
                continue
            chosen = [(fp, a) for fp, a in pairs if integ.send_resolved or not a.is_resolved(now)]
            if not chosen:
                items.append((None, LogUpdate(integ.id, group.key, firing, resolved)))
                continue
            infos = [
                AlertInfo.of(a, now, {"auto_recovery": notes[fp]} if fp in notes else None)
                for fp, a in chosen
            ]
            status = Status.FIRING if firing else Status.RESOLVED
            reported = [f"{episode(i.fingerprint, i.starts_at)}:{i.status.value}" for i in infos]
            n = Notification(
                receiver=integ.receiver,
                integration=integ.id,
                group_key=group.key,
                group_labels=group.labels.to_dict(),
                status=status,
                alerts=infos,
                external_url=self._config.external_url,
                created_at=now,
                idempotency_key=idempotency_key(group.key, integ.id, status, reported, now),
                notes=[notes[fp] for fp, _ in chosen if fp in notes],
            )
            items.append((n, LogUpdate(integ.id, group.key, firing, resolved)))
        if items:
            self._outbox.enqueue(items)

    def _forward(self, batches: dict[str, list[Alert]], now: float) -> None:
        items: list[EnqueueItem] = []
        for integ_id, alerts in batches.items():
            receiver = integ_id.split("/", 1)[0]
            integ = next(i for i in self._integrations[receiver] if i.id == integ_id)
            chosen = [a for a in alerts if integ.send_resolved or not a.is_resolved(now)]
            if not chosen:
                continue
            infos = [AlertInfo.of(a, now) for a in chosen]
            key = f"forward:{integ_id}"
            status = (
                Status.FIRING if any(i.status is Status.FIRING for i in infos) else Status.RESOLVED
            )
            n = Notification(
                receiver=receiver,
                integration=integ_id,
                group_key=key,
                group_labels={},
                status=status,
                alerts=infos,
                external_url=self._config.external_url,
                created_at=now,
                idempotency_key=idempotency_key(
                    key,
                    integ_id,
                    status,
                    [f"{episode(i.fingerprint, i.starts_at)}:{i.status.value}" for i in infos],
                    now,
                ),
            )
            items.append((n, LogUpdate(integ_id, key, frozenset(), frozenset())))
        if items:
            self._outbox.enqueue(items)

    def _prune(self, now: float) -> None:
        in_groups = {fp for g in self._groups.values() for fp in g.alerts}
        for fp in [fp for fp in self._alerts if fp not in in_groups]:
            if self._resolved(self._alerts[fp], now, fp):
                del self._alerts[fp]
                self._updated.pop(fp, None)
                self._holds.pop(fp, None)

    # --- silences, actions, meta-alerts -------------------------------------------

    def _silences_changed(self) -> None:
        # A silence was created or expired: re-check every group that has flushed
        # now, so an expired silence's alert goes out at once.
        now = self._clock.time()
        for group in self._groups.values():
            if group.has_flushed:
                group.due = min(group.due, now)
        self._wake.set()

    def _maybe_start_action(self, alert: Alert, now: float) -> None:
        if self._actions is None:
            return
        config = self._actions.config_for(alert)
        if config is None or not self._actions.should_run(alert):
            return
        hold = _Hold(until=now + config.verify_after, verify_after=config.verify_after)
        self._holds[alert.fingerprint] = hold
        runner = self._actions

        async def run() -> None:
            hold.run = await runner.run(alert)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _meta_alert(self, integration: str, receiver: str) -> Alert:
        return Alert(
            labels=Labels.of(
                alertname=META_ALERTNAME,
                receiver=receiver,
                integration=integration,
                priority="P2",
                severity="warning",
            ),
            annotations={"summary": f"notifications to {integration} are failing"},
            starts_at=self._clock.time(),
        )

    async def delivery_failed(
        self, integration: str, receiver: str, error: str, permanent: bool
    ) -> None:
        """Raise ``NotificationFailing`` for the integration (the outbox's listener)."""
        base = self._meta_alert(integration, receiver)
        existing = self._alerts.get(base.fingerprint)
        if existing is not None and not self._resolved(existing, self._clock.time()):
            return
        alert = Alert(
            base.labels,
            {**base.annotations, "description": error[:500], "permanent": str(permanent).lower()},
            base.starts_at,
        )
        self._sticky.add(alert.fingerprint)
        await self.send([alert])

    async def delivery_recovered(self, integration: str, receiver: str) -> None:
        """Resolve the integration's ``NotificationFailing`` (the outbox's listener)."""
        base = self._meta_alert(integration, receiver)
        existing = self._alerts.get(base.fingerprint)
        if existing is None:
            return
        self._sticky.discard(base.fingerprint)
        now = self._clock.time()
        await self.send([Alert(existing.labels, existing.annotations, existing.starts_at, now)])

    async def aclose(self) -> None:
        """Detach from the silence store (before a reload replaces this dispatcher)
        and wait for running actions to finish."""
        if self._silences is not None:
            self._silences.remove_listener(self._silences_changed)
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _same_route(old: RouteNode, new: RouteNode) -> bool:
    """Whether a route node at the same place in the tree matches and groups as before."""
    return (
        old.matchers == new.matchers
        and old.options == new.options
        and old.continue_ == new.continue_
    )


def _needs_update(  # noqa: PLR0917 - mirrors Alertmanager's needsUpdate
    entry: LogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    send_resolved: bool,
    repeat_interval: float,
    now: float,
) -> bool:
    """Alertmanager's DedupStage decision for one integration."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        # Everything resolved: notify only if the receiver was told about firing ones.
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at < now - repeat_interval
