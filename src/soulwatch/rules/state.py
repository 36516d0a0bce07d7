"""The alert state machine of one alerting rule, as Prometheus defines it.

At each evaluation the rule's expression returns a vector; every sample is an
alert instance identified by its labels (sample labels without ``__name__``,
plus the rule's labels and ``alertname``). An instance is *pending* from the
first evaluation that returns it and *firing* once it has been returned for
at least ``for``. When the expression stops returning it, a pending instance
is dropped and a firing one *resolves* — unless ``keep_firing_for`` keeps it
firing a while longer. Resolved instances are kept (and re-sent) for 15
minutes so that the receiver learns of the resolution even if a send failed.

Two soulwatch extensions, both opt-in per rule (see docs/rules.md):

* ``recover_expr``: a firing instance stays firing while ``recover_expr``
  still returns its series, so a value hovering at the threshold does not flap;
* ``no_data``: what to do when the expression returns nothing at all.

And one rule of the monitor (not of promtool's unit tests): no data is not
"resolved". When the caller says an instance's data source is down (its
scrape or collector failed, so its series went stale), the instance holds
its state, marked with a ``no_data`` annotation that the notification
carries, until data comes back and says whether the condition is over.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from soulwatch.alerts import Alert, AlertState, fingerprint
from soulwatch.exceptions import EvaluationError
from soulwatch.promql.values import Sample
from soulwatch.rules.model import NoDataPolicy, RuleSpec
from soulwatch.rules.templates import TemplateData, TemplateError, expand, parse_template
from soulwatch.tsdb.model import METRIC_NAME, Labels

#: How long a resolved alert is remembered and re-sent (Prometheus's value).
RESOLVED_RETENTION_S = 15 * 60.0

#: The annotation set on an instance held because its data source is down.
NO_DATA_ANNOTATION = "no_data"

#: Given an instance's labels and since when it is active, why its data
#: source is down (``None``: it is not).
SourceDown = Callable[[Labels, float], str | None]

ALERTS_METRIC = "ALERTS"
ALERTS_FOR_STATE_METRIC = "ALERTS_FOR_STATE"


@dataclass
class ActiveAlert:
    """One alert instance of a rule, with the times that drive its state."""

    labels: Labels
    annotations: dict[str, str]
    state: AlertState
    active_at: float
    value: float = math.nan
    fired_at: float | None = None
    resolved_at: float | None = None
    keep_firing_since: float | None = None
    last_sent_at: float | None = None
    #: The state the ``ALERTS`` labels below were built for, and the labels of
    #: its ``ALERTS`` and ``ALERTS_FOR_STATE`` series (built again on a change).
    series_labels: tuple[AlertState, Labels, Labels] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def fingerprint(self) -> str:
        """Alertmanager's fingerprint of the labels."""
        return fingerprint(self.labels)

    def needs_sending(self, ts: float, resend_delay_s: float) -> bool:
        """Prometheus's rule: never pending; at once after a resolution; else every resend delay."""
        if self.state is AlertState.PENDING:
            return False
        if self.last_sent_at is None:
            return True
        if self.resolved_at is not None and self.resolved_at > self.last_sent_at:
            return True
        return self.last_sent_at + resend_delay_s < ts

    def to_alert(self, generator_url: str = "") -> Alert:
        """The :class:`~soulwatch.alerts.Alert` sent to the alerting side."""
        return Alert(
            labels=self.labels,
            annotations=dict(self.annotations),
            starts_at=self.fired_at if self.fired_at is not None else self.active_at,
            ends_at=self.resolved_at,
            generator_url=generator_url,
            value=self.value,
        )


@dataclass(frozen=True)
class Transition:
    """One state change of one alert instance, as recorded in the history."""

    t: float
    rule: str
    alertname: str
    labels: Labels
    from_state: AlertState
    to_state: AlertState
    value: float

    @property
    def fingerprint(self) -> str:
        """Alertmanager's fingerprint of the labels."""
        return fingerprint(self.labels)


@dataclass
class AlertingRuleState:
    """The mutable state of one alerting rule: its active alert instances by labels."""

    spec: RuleSpec
    key: str
    group_labels: Mapping[str, str] = field(default_factory=dict)
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    active: dict[Labels, ActiveAlert] = field(default_factory=dict)
    #: When the rule was last evaluated before a restart (set by :meth:`restore`).
    restored_from: float | None = None
    #: Resolved instances replaced by a new episode of the same labels before
    #: their resolve was handed to the sink; :meth:`due` sends them first.
    superseded: list[ActiveAlert] = field(default_factory=list)
    #: Fixed rule labels (no template action) and, under them, each sample's
    #: label set -> its instance's, from the last evaluation (see :meth:`_instances`).
    _instance_labels: tuple[tuple[tuple[str, str], ...], dict[Labels, Labels]] | None = field(
        default=None, compare=False, repr=False
    )

    @property
    def labels(self) -> dict[str, str]:
        """Group labels overridden by the rule's own labels."""
        return {**self.group_labels, **self.spec.labels}

    def restore(self, alerts: Iterable[ActiveAlert], last_evaluation: float | None = None) -> None:
        """Take over persisted instances (after a restart or a reload).

        ``last_evaluation`` is when the previous process last evaluated the
        rule; the first evaluation after the restart then discounts the
        downtime from pending timers (see :meth:`resume`).
        """
        self.active = {a.labels: a for a in alerts}
        self.restored_from = last_evaluation

    def resume(self, ts: float, interval_s: float) -> None:
        """At the first evaluation after a restart, continue pending timers where they stopped.

        A pending alert that had been pending for 90 s when the process
        stopped is pending for 90 s plus one interval at the next evaluation,
        however long the process was down: its ``for`` is not shortened by
        time nobody observed. Firing and resolved alerts keep their times.
        """
        if self.restored_from is None:
            return
        gap = ts - self.restored_from - interval_s
        self.restored_from = None
        if gap <= 0:
            return
        for alert in self.active.values():
            if alert.state is AlertState.PENDING:
                alert.active_at += gap

    def evaluate(
        self,
        vector: Sequence[Sample],
        ts: float,
        recovering: Sequence[Sample] | None = None,
        *,
        inputs_missing: bool = False,
        source_down: SourceDown | None = None,
    ) -> list[Transition]:
        """Apply one evaluation's result at ``ts`` (seconds); returns the state changes.

        ``recovering`` is the result of ``recover_expr`` when the rule has one.
        ``inputs_missing`` says that none of the series the expression reads
        exist (their inputs vanished), which is when the no-data policy applies.
        ``source_down`` is asked about each pending or firing instance the
        result no longer has: when it names a reason, the instance holds
        (marked ``no_data``) instead of resolving.
        Raises :class:`EvaluationError` when two samples map to the same alert.
        """
        if not vector and inputs_missing:
            policy = self.spec.no_data
            if policy is NoDataPolicy.KEEP_LAST:
                return []
            if policy is NoDataPolicy.ALERTING:
                vector = [Sample(Labels.of(nodata="true"), int(ts * 1000), math.nan)]
        before = {lbls: (a.state, a.value) for lbls, a in self.active.items()}
        fresh = self._instances(vector, ts)
        held = self._held_by_recover_expr(recovering or (), ts) if self.spec.recover_expr else {}

        for lbls, alert in fresh.items():
            current = self.active.get(lbls)
            if current is not None and current.state is not AlertState.INACTIVE:
                current.value = alert.value
                current.annotations = alert.annotations
                continue
            if (
                current is not None
                and current.resolved_at is not None
                and not _resolve_sent(current)
            ):
                # A new episode begins before the last one's resolve was sent
                # (typically: it resolved, the process was killed, and the
                # fault is back): the resolve still goes out, before the page.
                self.superseded.append(current)
            self.active[lbls] = alert

        keep_s = self.spec.keep_firing_for_s
        for lbls in list(self.active):
            alert = self.active[lbls]
            if lbls in fresh:
                alert.keep_firing_since = None
            elif alert.state is not AlertState.INACTIVE and (
                reason := source_down(lbls, alert.active_at) if source_down is not None else None
            ):
                # The data went dark, not the condition: hold, and say so.
                if NO_DATA_ANNOTATION not in alert.annotations:
                    since = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                    alert.annotations = {
                        **alert.annotations,
                        NO_DATA_ANNOTATION: f"no data since {since}: {reason}; "
                        "the alert holds until data says the condition is over",
                    }
                continue
            else:
                keep = False
                if alert.state is AlertState.FIRING and lbls in held:
                    keep = True
                    alert.value = held[lbls]
                elif alert.state is AlertState.FIRING and keep_s > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = ts
                    keep = ts - alert.keep_firing_since < keep_s
                expired = (
                    alert.resolved_at is not None
                    and ts - alert.resolved_at > RESOLVED_RETENTION_S
                    and _resolve_sent(alert)
                )
                if alert.state is AlertState.PENDING or expired:
                    del self.active[lbls]
                if alert.state is not AlertState.INACTIVE and not keep:
                    alert.state = AlertState.INACTIVE
                    alert.resolved_at = ts
                    if NO_DATA_ANNOTATION in alert.annotations:
                        # Data came back and says it is over: the mark no longer applies.
                        alert.annotations = {
                            k: v for k, v in alert.annotations.items() if k != NO_DATA_ANNOTATION
                        }
                if not keep:
                    continue
            if alert.state is AlertState.FIRING and ts - alert.active_at < self.spec.for_s:
                # A reload raised `for`: the alert has not been active long enough.
                alert.state = AlertState.PENDING
                alert.fired_at = alert.last_sent_at = alert.keep_firing_since = None
            if alert.state is AlertState.PENDING and ts - alert.active_at >= self.spec.for_s:
                alert.state = AlertState.FIRING
                alert.fired_at = ts

        transitions = []
        for lbls in set(before) | set(self.active):
            old, old_value = before.get(lbls, (AlertState.INACTIVE, math.nan))
            alert_now = self.active.get(lbls)
            new = alert_now.state if alert_now is not None else AlertState.INACTIVE
            if old is not new:
                value = alert_now.value if alert_now is not None else old_value
                transitions.append(Transition(ts, self.key, self.spec.name, lbls, old, new, value))
        transitions.sort(key=lambda tr: tr.labels)
        return transitions

    def limit_exceeded(self, limit: int) -> int:
        """The number of pending + firing instances if above ``limit`` (> 0), else 0."""
        count = sum(1 for a in self.active.values() if a.state is not AlertState.INACTIVE)
        return count if 0 < limit < count else 0

    def series(self) -> list[tuple[Labels, float]]:
        """The ``ALERTS`` and ``ALERTS_FOR_STATE`` samples to write for this evaluation."""
        out: list[tuple[Labels, float]] = []
        for alert in self.active.values():
            state = alert.state
            if state is AlertState.INACTIVE:
                continue
            # An instance keeps its labels from one evaluation to the next: its
            # series' labels are built when it appears or changes state.
            built = alert.series_labels
            if built is None or built[0] is not state:
                built = alert.series_labels = (
                    state,
                    alert.labels.with_({METRIC_NAME: ALERTS_METRIC, "alertstate": state.value}),
                    alert.labels.with_({METRIC_NAME: ALERTS_FOR_STATE_METRIC}),
                )
            out.append((built[1], 1.0))
            out.append((built[2], alert.active_at))
        return out

    def firing(self) -> list[ActiveAlert]:
        """Instances currently firing."""
        return [a for a in self.active.values() if a.state is AlertState.FIRING]

    def due(self, ts: float, resend_delay_s: float) -> list[ActiveAlert]:
        """Instances to send now (firing or recently resolved), per the resend delay."""
        return [
            *self.superseded,
            *(a for a in self.active.values() if a.needs_sending(ts, resend_delay_s)),
        ]

    def _template_data(self, sample_labels: Labels, value: float) -> TemplateData:
        return TemplateData(
            labels=sample_labels.to_dict(),
            value=value,
            external_labels=self.external_labels,
            external_url=self.external_url,
        )

    def _expand(self, text: str, data: TemplateData) -> str:
        try:
            return expand(text, data)
        except TemplateError as exc:
            # Prometheus puts the error in the text rather than losing the alert.
            return f"<error expanding template: {exc}>"

    def _instances(self, vector: Sequence[Sample], ts: float) -> dict[Labels, ActiveAlert]:
        out: dict[Labels, ActiveAlert] = {}
        rule_labels = self.labels
        # When no rule label is a template with an action, an instance's labels
        # depend on its sample's labels alone: those of the last evaluation's
        # samples are reused (the same series come back cycle after cycle).
        fixed = (
            (("alertname", self.spec.name), *rule_labels.items())
            if all(map(_is_fixed, rule_labels.values()))
            else None
        )
        known: dict[Labels, Labels] = {}
        if fixed is not None and self._instance_labels is not None:
            last_fixed, last_known = self._instance_labels
            if last_fixed == fixed:
                known = last_known
        seen: dict[Labels, Labels] = {}
        for sample in vector:
            data = self._template_data(sample.labels, sample.value)
            found = known.get(sample.labels)
            if found is not None:
                lbls = found
            else:
                # The sample's labels without the name, then the rule's (an empty
                # value removes a label): one Labels built, not two.
                merged = dict(sample.labels)
                merged.pop(METRIC_NAME, None)
                merged.update(
                    {name: self._expand(text, data) for name, text in rule_labels.items()}
                )
                merged["alertname"] = self.spec.name
                lbls = Labels(merged.items())
            if fixed is not None:
                seen[sample.labels] = lbls
            if lbls in out:
                raise EvaluationError(
                    "vector contains metrics with the same labelset after applying alert labels"
                )
            annotations = {
                name: self._expand(text, data) for name, text in self.spec.annotations.items()
            }
            out[lbls] = ActiveAlert(
                labels=lbls,
                annotations=annotations,
                state=AlertState.PENDING,
                active_at=ts,
                value=sample.value,
            )
        self._instance_labels = (fixed, seen) if fixed is not None else None
        return out

    def _held_by_recover_expr(self, vector: Sequence[Sample], ts: float) -> dict[Labels, float]:
        """The instances ``recover_expr`` still returns (they have not recovered yet)."""
        held: dict[Labels, float] = {}
        for lbls, alert in self._instances(vector, ts).items():
            held[lbls] = alert.value
        return held


def _is_fixed(text: str) -> bool:
    """Whether a rule label's template is plain text (its value never depends on the sample)."""
    try:
        return parse_template(text).text is not None
    except TemplateError:
        return False


def _resolve_sent(alert: ActiveAlert) -> bool:
    """Whether a resolved instance's resolve was handed to the sink (since the last start)."""
    return (
        alert.resolved_at is not None
        and alert.last_sent_at is not None
        and alert.last_sent_at >= alert.resolved_at
    )


def copy_alert(alert: ActiveAlert) -> ActiveAlert:
    """An independent copy (annotations included)."""
    return replace(alert, annotations=dict(alert.annotations))
