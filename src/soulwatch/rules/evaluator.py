"""The rule manager: loads rule files, runs each group on its interval, sends alerts.

Groups run concurrently, each in its own task, on the injected clock. Like
Prometheus, a group evaluates at timestamps aligned to its interval plus an
offset derived from a hash of the group, and the first evaluation after a
start is at the next such slot. After each alerting rule's evaluation its
state and transitions are saved to the :class:`AlertStateStore` (when one is
given) and its due alerts are sent to the :class:`~soulwatch.alerts.AlertSink`.

A restart restores that state: pending timers continue from their original
``active_at``, firing alerts stay firing, and alerts whose condition ended
while the monitor was down resolve at the first evaluation. Every restored
firing or resolved instance is handed to the sink again at that first
evaluation, since the sink's memory did not survive; the sink's notification
log (keyed on episodes) drops what was already notified. So a resolve is
durable from the moment its state is saved, even when the notification it
leads to had not yet left.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote_plus

from prometheus_client import CollectorRegistry, Counter, Gauge

from soulwatch.alerts import Alert, AlertSink, AlertState
from soulwatch.clock import Clock
from soulwatch.exceptions import SoulwatchError
from soulwatch.promql.values import QueryEngine
from soulwatch.rules.group import Group, Rule, RuleHealth, RuleOutcome
from soulwatch.rules.loader import ExprValidator, load_rule_files
from soulwatch.rules.model import GroupSpec
from soulwatch.rules.state import ActiveAlert, Transition, copy_alert
from soulwatch.rules.store import AlertStateStore, RuleSave
from soulwatch.runner import BlockingRunner, run_inline
from soulwatch.tsdb.storage import Storage

# The standard library's logger: quiet in a program that sets no logging up; the
# monitor's set-up renders the ``extra`` fields (soulwatch.log_setup).
log = logging.getLogger("soulwatch.rules")

#: The log event of each alert transition: (from, to) -> event.
_TRANSITION_EVENTS = {
    (AlertState.INACTIVE, AlertState.PENDING): "alert pending",
    (AlertState.INACTIVE, AlertState.FIRING): "alert firing",
    (AlertState.PENDING, AlertState.FIRING): "alert firing",
    (AlertState.PENDING, AlertState.INACTIVE): "alert pending ended",
    (AlertState.FIRING, AlertState.INACTIVE): "alert resolved",
    (AlertState.FIRING, AlertState.PENDING): "alert pending",
}

#: Prometheus's ``--rules.alert.resend-delay`` default.
RESEND_DELAY_S = 60.0


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["rule_group"]
        self.evaluations = Counter(
            "soulwatch_rule_evaluations_total",
            "Rule evaluations.",
            labels,
            registry=registry,
        )
        self.failures = Counter(
            "soulwatch_rule_evaluation_failures_total",
            "Rule evaluations that failed.",
            labels,
            registry=registry,
        )
        self.duration = Gauge(
            "soulwatch_rule_group_last_duration_seconds",
            "Duration of the last evaluation of the group.",
            labels,
            registry=registry,
        )
        self.missed = Counter(
            "soulwatch_rule_group_iterations_missed_total",
            "Group evaluations skipped because the previous one ran too long.",
            labels,
            registry=registry,
        )
        self.sent = Counter(
            "soulwatch_rule_alerts_sent_total",
            "Alerts handed to the alert sink.",
            registry=registry,
        )
        self.send_failures = Counter(
            "soulwatch_rule_alert_send_failures_total",
            "Batches of alerts the alert sink refused.",
            registry=registry,
        )


@dataclass(frozen=True)
class RuleStatus:
    """The API's view of one rule."""

    name: str
    kind: str
    expr: str
    health: RuleHealth
    last_error: str | None
    last_evaluation: float | None
    evaluation_seconds: float
    labels: dict[str, str]
    annotations: dict[str, str]
    for_s: float
    keep_firing_for_s: float
    alerts: tuple[ActiveAlert, ...]


@dataclass(frozen=True)
class GroupStatus:
    """The API's view of one group."""

    name: str
    file: str
    interval_s: float
    last_evaluation: float | None
    evaluation_seconds: float
    rules: tuple[RuleStatus, ...]


class RuleManager:
    """Runs rule groups and owns their alert state."""

    def __init__(
        self,
        *,
        engine: QueryEngine,
        storage: Storage,
        sink: AlertSink,
        clock: Clock,
        store: AlertStateStore | None = None,
        registry: CollectorRegistry | None = None,
        default_interval_s: float = 60.0,
        external_labels: dict[str, str] | None = None,
        external_url: str = "",
        resend_delay_s: float = RESEND_DELAY_S,
        validate_expr: ExprValidator | None = None,
        phase_for: Callable[[float], float | None] | None = None,
        hold_when_source_down: bool = True,
        runner: BlockingRunner = run_inline,
    ) -> None:
        #: No data is not "resolved": an alert whose source is down holds (see
        #: :class:`~soulwatch.rules.group.SourceWatch`).
        self.hold_when_source_down = hold_when_source_down
        #: Given a group's interval, the phase to evaluate it at (``None``: spread by hash).
        self.phase_for = phase_for
        self.engine = engine
        self.storage = storage
        self.sink = sink
        self.clock = clock
        self.store = store
        self.default_interval_s = default_interval_s
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.resend_delay_s = resend_delay_s
        self._validate_expr = validate_expr
        self._metrics = _Metrics(registry if registry is not None else CollectorRegistry())
        # Evaluations and state writes run here: off the event loop on a real clock.
        self._run = runner
        self._groups: list[Group] = []
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._evaluating: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        # Rules whose saved state is known to be empty: quiet evaluations skip the write.
        self._saved_empty: set[str] = set()
        self._running = False
        self._paths: list[Path] = []

    # --- loading -------------------------------------------------------------

    def load(self, paths: Iterable[str | Path]) -> None:
        """Load rule files; on any problem raise and keep the current rules running."""
        path_list = [Path(p) for p in paths]
        specs = load_rule_files(path_list, validate_expr=self._validate_expr)
        self._paths = path_list
        self.set_groups(specs)

    def reload(self) -> None:
        """Re-read the files last loaded (SIGHUP / API); a bad file changes nothing."""
        self.load(self._paths)

    def set_groups(self, specs: Sequence[GroupSpec]) -> None:
        """Replace the groups, as Prometheus reloads them.

        A group equal to its old self (same file, name, interval and rules)
        keeps running untouched: its state, its schedule and its task. Other
        groups are rebuilt and carry over the state of rules that still exist.
        Series of rules that no longer exist are marked stale at once, so
        queries stop returning them now rather than after the lookback.
        Call it between evaluations (see :meth:`idle`).
        """
        old_groups = {group.key: group for group in self._groups}
        old_rules = {rule.key: rule for group in self._groups for rule in group.rules}
        persisted = self.store.load() if self.store is not None and not old_rules else {}
        last_evaluations = (
            self.store.last_evaluations() if self.store is not None and not old_rules else {}
        )
        groups: list[Group] = []
        for spec in specs:
            phase = self._phase(spec)
            old = old_groups.get(spec.key)
            if old is not None and old.phase_s == phase and old.spec.equals(spec):
                groups.append(old)
                continue
            group = Group(
                spec,
                default_interval_s=self.default_interval_s,
                external_labels=self.external_labels,
                external_url=self.external_url,
                phase_s=phase,
                hold_when_source_down=self.hold_when_source_down,
            )
            for rule in group.rules:
                _carry_over(rule, old_rules.get(rule.key), persisted, last_evaluations)
            groups.append(group)
        kept = {id(g) for g in groups}
        live = {rule.key for group in groups for rule in group.rules}
        self._mark_stale([r for r in old_rules.values() if r.key not in live])
        for key, task in list(self._tasks.items()):
            if id(old_groups[key]) not in kept:
                # A group being evaluated finishes first (see stop()); its loop then ends.
                if key not in self._evaluating:
                    task.cancel()
                del self._tasks[key]
        self._groups = groups
        if self._running:
            self._start_tasks()

    def _mark_stale(self, rules: Sequence[Rule]) -> None:
        """End, now, every series the ``rules`` wrote last (staleness markers)."""
        now_ms = int(self.clock.time() * 1000)
        ended = 0
        for rule in rules:
            if rule.writer is None:
                continue
            ended += len(rule.writer.written)
            try:
                rule.writer.close(now_ms)
            except SoulwatchError as exc:
                log.warning(
                    "marking a removed rule's series stale failed",
                    extra={"rule": rule.key, "error": str(exc)},
                )
        if ended:
            log.info(
                "removed rules' series marked stale",
                extra={"rules": [r.key for r in rules], "series": ended},
            )

    def _phase(self, spec: GroupSpec) -> float | None:
        if self.phase_for is None:
            return None
        return self.phase_for(spec.interval_s or self.default_interval_s)

    # --- running -------------------------------------------------------------

    async def start(self) -> None:
        """Start one task per group."""
        self._running = True
        self._start_tasks()

    async def stop(self) -> None:
        """Stop every group task; an evaluation in progress completes first."""
        self._running = False
        tasks = list(self._tasks.items())
        self._tasks.clear()
        for key, task in tasks:
            if key not in self._evaluating:
                task.cancel()
        for _, task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _start_tasks(self) -> None:
        for group in self._groups:
            if group.key in self._tasks:
                continue  # kept by a reload: it runs on, on its own schedule
            self._tasks[group.key] = asyncio.create_task(
                self._run_group(group), name=f"rules:{group.key}"
            )

    def _cancel_tasks(self) -> None:
        for key, task in self._tasks.items():
            if key not in self._evaluating:
                task.cancel()
        self._tasks.clear()

    async def _run_group(self, group: Group) -> None:
        interval = group.interval_s
        next_ts = group.slot_at_or_before(self.clock.time()) + interval
        while self._tasks.get(group.key) is asyncio.current_task():
            await self.clock.sleep(next_ts - self.clock.time())
            # Not cancelled while evaluating (see stop()), so the state saved
            # always matches the alerts sent.
            self._evaluating.add(group.key)
            self._idle.clear()
            try:
                await self.evaluate_group(group, next_ts)
            finally:
                self._evaluating.discard(group.key)
                if not self._evaluating:
                    self._idle.set()
            next_ts += interval
            now = self.clock.time()
            if now >= next_ts:
                missed = int((now - next_ts) // interval) + 1
                self._metrics.missed.labels(group.key).inc(missed)
                next_ts += missed * interval

    async def idle(self, timeout: float = 60.0) -> None:
        """Wait (real time, bounded) until no group is being evaluated (a reload's moment)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def evaluate_group(self, group: Group, ts: float) -> list[RuleOutcome]:
        """One evaluation cycle of ``group`` at ``ts``: evaluate, persist, send."""
        outcomes = await self._run(group.evaluate, ts, self.engine, self.storage)
        self._metrics.evaluations.labels(group.key).inc(len(outcomes))
        self._metrics.duration.labels(group.key).set(group.evaluation_seconds)
        for outcome in outcomes:
            if outcome.error is not None:
                self._metrics.failures.labels(group.key).inc()
                log.warning(
                    "rule failed", extra={"rule": outcome.rule.key, "error": str(outcome.error)}
                )
            for tr in outcome.transitions:
                log.info(
                    _TRANSITION_EVENTS.get((tr.from_state, tr.to_state), "alert changed"),
                    extra={
                        "alertname": tr.alertname,
                        "fingerprint": tr.fingerprint,
                        "rule": tr.rule,
                        "labels": tr.labels.to_dict(),
                        "value": tr.value,
                    },
                )
            if outcome.rule.alerting is not None:
                await self._send(outcome.rule, ts)
        # The group's alert state in one transaction, once every rule's alerts
        # went out (so what is saved says what was sent).
        await self._run(self._persist, outcomes, ts)
        return outcomes

    async def evaluate_all(self, ts: float) -> None:
        """Evaluate every group once at ``ts`` (tests, benchmarks, ``soulwatch rules eval``)."""
        for group in self._groups:
            await self.evaluate_group(group, ts)

    async def _send(self, rule: Rule, ts: float) -> None:
        assert rule.alerting is not None
        due = rule.alerting.due(ts, self.resend_delay_s)
        if not due:
            return
        url = generator_url(self.external_url, rule.spec.expr)
        alerts: list[Alert] = [a.to_alert(url) for a in due]
        try:
            await self.sink.send(alerts)
        except Exception as exc:
            # Whatever the sink's failure, the group loop goes on; the alerts
            # are not marked as sent, so the next evaluation sends them again.
            self._metrics.send_failures.inc()
            log.warning(
                "sending alerts failed",
                extra={"rule": rule.key, "alerts": len(alerts), "error": str(exc)},
            )
            return
        for alert in due:
            alert.last_sent_at = ts
        rule.alerting.superseded.clear()
        self._metrics.sent.inc(len(alerts))

    def _persist(self, outcomes: Sequence[RuleOutcome], ts: float) -> None:
        if self.store is None:
            return
        rules: list[tuple[Rule, bool]] = []
        saves: list[RuleSave] = []
        for outcome in outcomes:
            rule = outcome.rule
            if rule.alerting is None:
                continue
            quiet = not rule.alerting.active and not outcome.transitions
            if quiet and rule.key in self._saved_empty:
                continue  # nothing to save, and nothing saved that needs replacing
            rules.append((rule, quiet))
            saves.append(RuleSave(rule.key, rule.alerting.active.values(), outcome.transitions))
        try:
            self.store.save_many(saves, ts)
        except SoulwatchError as exc:
            for rule, _ in rules:
                rule.health = RuleHealth.ERR
                rule.last_error = str(exc)
                log.warning(
                    "saving alert state failed", extra={"rule": rule.key, "error": str(exc)}
                )
            return
        for rule, quiet in rules:
            if quiet:
                self._saved_empty.add(rule.key)
            else:
                self._saved_empty.discard(rule.key)

    # --- read model ----------------------------------------------------------

    def groups(self) -> list[GroupStatus]:
        """Every group with its rules, their health and active alerts (for the API)."""
        return [
            GroupStatus(
                name=g.spec.name,
                file=g.spec.file,
                interval_s=g.interval_s,
                last_evaluation=g.last_evaluation,
                evaluation_seconds=g.evaluation_seconds,
                rules=tuple(_status(r) for r in g.rules),
            )
            for g in self._groups
        ]

    def history(
        self, *, limit: int = 100, alertname: str | None = None, since: float | None = None
    ) -> list[Transition]:
        """Recorded transitions, newest first (empty without a store)."""
        if self.store is None:
            return []
        return self.store.history(limit=limit, alertname=alertname, since=since)

    def active_alerts(self) -> list[ActiveAlert]:
        """Every pending or firing instance of every rule."""
        out: list[ActiveAlert] = []
        for group in self._groups:
            for rule in group.rules:
                if rule.alerting is not None:
                    # A copy first: an evaluation may be changing the dict in a worker thread.
                    active = list(rule.alerting.active.values())
                    out.extend(a for a in active if a.state.value != "inactive")
        return out


def _carry_over(
    rule: Rule,
    previous: Rule | None,
    persisted: dict[str, list[ActiveAlert]],
    last_evaluations: dict[str, float],
) -> None:
    """Give a rebuilt ``rule`` the state of its previous self, or what the store saved."""
    if previous is not None:
        rule.health, rule.last_error = previous.health, previous.last_error
        rule.last_evaluation = previous.last_evaluation
        rule.writer = previous.writer
    if rule.alerting is None:
        return
    if previous is not None and previous.alerting is not None:
        rule.alerting.restore(copy_alert(a) for a in list(previous.alerting.active.values()))
        rule.alerting.superseded = list(previous.alerting.superseded)
    elif rule.key in persisted:
        # The alert sink kept nothing across the restart (the dispatcher holds
        # alerts in memory until it flushes their group): every restored
        # instance, resolved ones included, is handed to it again at the first
        # evaluation. That is what makes a resolve durable once its state is saved.
        restored = [replace(a, last_sent_at=None) for a in persisted[rule.key]]
        rule.alerting.restore(restored, last_evaluations.get(rule.key))


def generator_url(external_url: str, expr: str) -> str:
    """The link from an alert to its expression (empty without an external URL).

    The same link as Prometheus's (its ``/graph`` page); the console answers it
    with Explore on that expression, and tools that parse ``g0.expr`` still can.
    """
    if not external_url:
        return ""
    return f"{external_url.rstrip('/')}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


def _status(rule: Rule) -> RuleStatus:
    alerts: tuple[ActiveAlert, ...] = ()
    if rule.alerting is not None:
        active = list(rule.alerting.active.values())  # a copy: see active_alerts()
        alerts = tuple(copy_alert(a) for a in active if a.state.value != "inactive")
    return RuleStatus(
        name=rule.spec.name,
        kind=rule.spec.kind.value,
        expr=rule.spec.expr,
        health=rule.health,
        last_error=rule.last_error,
        last_evaluation=rule.last_evaluation,
        evaluation_seconds=rule.evaluation_seconds,
        labels={**rule.group_labels, **rule.spec.labels},
        annotations=dict(rule.spec.annotations),
        for_s=rule.spec.for_s,
        keep_firing_for_s=rule.spec.keep_firing_for_s,
        alerts=alerts,
    )
