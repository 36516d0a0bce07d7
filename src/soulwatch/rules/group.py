"""A rule group at run time: its rules, their health, and one evaluation cycle.

:meth:`Group.evaluate` runs every rule of the group in order at one
timestamp, writes recording results and ``ALERTS`` series to storage (with
staleness markers for series that disappeared, as Prometheus does), and
updates the alert state. It is synchronous and sends nothing: the
:class:`~soulwatch.rules.evaluator.RuleManager` schedules it and delivers the
alerts, the unit-test runner drives it directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields, is_dataclass
from enum import Enum
from functools import lru_cache

from soulwatch.alerts import fingerprint
from soulwatch.exceptions import QueryError, SoulwatchError
from soulwatch.promql.ast import Expr, MatrixSelector, VectorSelector
from soulwatch.promql.values import QueryEngine, QueryResult, Sample, Scalar, String
from soulwatch.rules.model import GroupSpec, NoDataPolicy, RuleSpec
from soulwatch.rules.state import AlertingRuleState, Transition
from soulwatch.tsdb.model import METRIC_NAME, Labels, Matcher, is_stale_nan
from soulwatch.tsdb.storage import Storage
from soulwatch.tsdb.writer import SeriesWriter


class RuleHealth(Enum):
    """A rule's health after its last evaluation (Prometheus's values)."""

    UNKNOWN = "unknown"
    OK = "ok"
    ERR = "err"


class RuleEvaluationError(QueryError):
    """A rule's result cannot be used (wrong type, duplicate labels, over the limit)."""


def to_vector(result: QueryResult, t_ms: int) -> list[Sample]:
    """A rule result as an instant vector (a scalar becomes one label-less sample)."""
    value = result.value
    if isinstance(value, Scalar):
        return [Sample(Labels(), t_ms, value.value)]
    if isinstance(value, String):
        raise RuleEvaluationError("rule result is a string, not a vector or scalar")
    out: list[Sample] = []
    for item in value:
        if not isinstance(item, Sample):
            raise RuleEvaluationError("rule result is a range vector, not a vector or scalar")
        out.append(item)
    return out


#: How far back an instant selector looks (Prometheus's default lookback delta).
LOOKBACK_MS = 300_000


def inputs_present(
    expr: str, t_ms: int, storage: Storage, *, lookback_ms: int = LOOKBACK_MS
) -> bool:
    """Whether any series an expression reads has a sample in its window at ``t_ms``.

    This is how the no-data policy tells "the condition is false" (inputs
    present, nothing matched the threshold) from "the inputs vanished".
    An expression without selectors (``vector(1)``) always has data.
    """
    from soulwatch.promql.parser import parse

    selectors = list(_selectors(parse(expr), lookback_ms))
    if not selectors:
        return True
    for selector, range_ms in selectors:
        end = t_ms - selector.offset_ms
        # Left-open window, as Prometheus 3 selects: (end - range, end].
        if storage.series(list(selector.matchers), end - range_ms + 1, end):
            return True
    return False


class SourceWatch:
    """Answers, for one rule at one evaluation, whether an instance's data source is down.

    A source is a scrape target or collector: the series it writes carry its
    ``job`` and ``instance``, and it writes ``up`` (1 when the last cycle
    succeeded, 0 when it failed, staleness markers when it is removed). An
    instance whose labels name a ``job`` and ``instance`` is dark when that
    ``up`` is 0 now. One without them (an aggregation dropped them) is dark
    when any source of the series its expression reads is. A source that was
    removed (``up`` stale or gone) is not dark: nothing will ever say more.
    """

    def __init__(self, expr: str, t_ms: int, storage: Storage, *, lookback_ms: int) -> None:
        self._expr = expr
        self._t_ms = t_ms
        self._storage = storage
        self._lookback_ms = lookback_ms
        self._up: dict[tuple[str, str], bool] = {}
        self._inputs: dict[int, list[tuple[str, str]]] = {}

    def __call__(self, labels: Labels, active_since: float) -> str | None:
        job, instance = labels.get("job"), labels.get("instance")
        if job and instance:
            return self._describe(job, instance) if self._down(job, instance) else None
        for job, instance in self._input_sources(round(active_since * 1000)):
            if self._down(job, instance):
                return self._describe(job, instance)
        return None

    @staticmethod
    def _describe(job: str, instance: str) -> str:
        return f"its source (job={job}, instance={instance}) is down"

    def _down(self, job: str, instance: str) -> bool:
        key = (job, instance)
        if key not in self._up:
            matchers = [
                Matcher.equal(METRIC_NAME, "up"),
                Matcher.equal("job", job),
                Matcher.equal("instance", instance),
            ]
            latest: float | None = None
            for series in self._storage.select(
                matchers, self._t_ms - self._lookback_ms + 1, self._t_ms
            ):
                if series.values:
                    latest = series.values[-1]
            self._up[key] = latest is not None and not is_stale_nan(latest) and latest == 0
        return self._up[key]

    def _input_sources(self, since_ms: int) -> list[tuple[str, str]]:
        cached = self._inputs.get(since_ms)
        if cached is not None:
            return cached
        found: set[tuple[str, str]] = set()
        for selector, range_ms in _selectors(_parsed(self._expr), self._lookback_ms):
            end = self._t_ms - selector.offset_ms
            # Every series the expression read while the alert was active,
            # ended or not: a source that failed ended its series with markers.
            start = min(since_ms - selector.offset_ms, end) - range_ms
            for labels in self._storage.series(list(selector.matchers), start + 1, end):
                if labels.get("job") and labels.get("instance"):
                    found.add((labels.get("job"), labels.get("instance")))
        self._inputs[since_ms] = sorted(found)
        return self._inputs[since_ms]


@lru_cache(maxsize=8192)
def _parsed(expr: str) -> Expr:
    """Parse a rule expression once; rule files are validated when loaded."""
    from soulwatch.promql.parser import parse

    return parse(expr)


def _selectors(node: object, lookback_ms: int) -> Iterator[tuple[VectorSelector, int]]:
    if isinstance(node, MatrixSelector):
        yield node.selector, node.range_ms
        return
    if isinstance(node, VectorSelector):
        yield node, lookback_ms
        return
    if isinstance(node, tuple):
        for item in node:
            yield from _selectors(item, lookback_ms)
        return
    if is_dataclass(node):
        for f in fields(node):
            yield from _selectors(getattr(node, f.name), lookback_ms)


def rule_key(group: GroupSpec, spec: RuleSpec, seen: dict[str, int]) -> str:
    """A rule's stable identity: group, name and labels (as Prometheus matches on reload)."""
    base = f"{group.key};{spec.name};{fingerprint(Labels(spec.labels.items()))}"
    n = seen.get(base, 0)
    seen[base] = n + 1
    return base if n == 0 else f"{base}#{n}"


@dataclass
class Rule:
    """One rule with its run-time status; ``alerting`` is set for alerting rules."""

    spec: RuleSpec
    key: str
    group_labels: dict[str, str]
    alerting: AlertingRuleState | None = None
    health: RuleHealth = RuleHealth.UNKNOWN
    last_error: str | None = None
    last_evaluation: float | None = None
    evaluation_seconds: float = 0.0
    #: writes the rule's series (made at its first write); ends the vanished ones
    writer: SeriesWriter | None = None

    @property
    def name(self) -> str:
        """The recorded metric or the alert name."""
        return self.spec.name


@dataclass
class RuleOutcome:
    """What one rule's evaluation produced, for the caller to persist and send."""

    rule: Rule
    transitions: list[Transition]
    error: SoulwatchError | None = None


class Group:
    """A group of rules evaluated together, in order, at one interval."""

    def __init__(
        self,
        spec: GroupSpec,
        *,
        default_interval_s: float = 60.0,
        external_labels: dict[str, str] | None = None,
        external_url: str = "",
        phase_s: float | None = None,
        hold_when_source_down: bool = False,
    ) -> None:
        self.spec = spec
        #: Alerts whose data source is down hold, marked ``no_data``, instead of
        #: resolving (the monitor's rule; promtool's unit tests keep Prometheus's).
        self.hold_when_source_down = hold_when_source_down
        self.interval_s = spec.interval_s or default_interval_s
        self.phase_s = phase_s
        self.last_evaluation: float | None = None
        self.evaluation_seconds = 0.0
        self.rules: list[Rule] = []
        seen: dict[str, int] = {}
        for rspec in spec.rules:
            key = rule_key(spec, rspec, seen)
            rule = Rule(rspec, key, dict(spec.labels))
            if rspec.is_alert:
                rule.alerting = AlertingRuleState(
                    spec=rspec,
                    key=key,
                    group_labels=dict(spec.labels),
                    external_labels=dict(external_labels or {}),
                    external_url=external_url,
                )
            self.rules.append(rule)

    @property
    def key(self) -> str:
        """``file;name``."""
        return self.spec.key

    def offset_s(self) -> float:
        """Where in each interval this group evaluates.

        Given a ``phase_s`` (the monitor evaluates right after the sources
        that feed the group), that phase; else, like Prometheus, a hash of the
        group, so that different groups spread over the interval. Either way
        two instances with the same configuration evaluate at the same offsets.
        """
        interval_ms = round(self.interval_s * 1000)
        if self.phase_s is not None:
            return (round(self.phase_s * 1000) % interval_ms) / 1000.0
        h = int(fingerprint(Labels.of(name=self.spec.name, file=self.spec.file)), 16)
        return (h % interval_ms) / 1000.0

    def slot_at_or_before(self, now: float) -> float:
        """The latest evaluation timestamp of this group that is not after ``now``."""
        interval_ms = round(self.interval_s * 1000)
        offset_ms = round(self.offset_s() * 1000)
        adjusted = int(now * 1000) - offset_ms
        return (adjusted - adjusted % interval_ms + offset_ms) / 1000.0

    def evaluate(self, ts: float, engine: QueryEngine, storage: Storage) -> list[RuleOutcome]:
        """Evaluate every rule at ``ts`` (seconds); errors are recorded per rule."""
        started = time.perf_counter()
        outcomes = []
        for rule in self.rules:
            outcomes.append(self._evaluate_rule(rule, ts, engine, storage))
        self.last_evaluation = ts
        self.evaluation_seconds = time.perf_counter() - started
        return outcomes

    def _evaluate_rule(
        self, rule: Rule, ts: float, engine: QueryEngine, storage: Storage
    ) -> RuleOutcome:
        started = time.perf_counter()
        query_ms = round((ts - self.spec.query_offset_s) * 1000)
        transitions: list[Transition] = []
        error: SoulwatchError | None = None
        try:
            vector = to_vector(engine.instant(_parsed(rule.spec.expr), query_ms), query_ms)
            if rule.alerting is not None:
                rule.alerting.resume(ts, self.interval_s)
                recovering: Sequence[Sample] | None = None
                if rule.spec.recover_expr:
                    recovering = to_vector(
                        engine.instant(_parsed(rule.spec.recover_expr), query_ms), query_ms
                    )
                missing = (
                    not vector
                    and rule.spec.no_data is not NoDataPolicy.OK
                    and not inputs_present(
                        rule.spec.expr,
                        query_ms,
                        storage,
                        lookback_ms=engine.lookback_delta_ms,
                    )
                )
                watch = (
                    SourceWatch(
                        rule.spec.expr,
                        query_ms,
                        storage,
                        lookback_ms=engine.lookback_delta_ms,
                    )
                    if self.hold_when_source_down
                    else None
                )
                transitions = rule.alerting.evaluate(
                    vector, ts, recovering, inputs_missing=missing, source_down=watch
                )
                count = rule.alerting.limit_exceeded(self.spec.limit)
                if count:
                    rule.alerting.active.clear()
                    raise RuleEvaluationError(
                        f"exceeded limit of {self.spec.limit} with {count} alerts"
                    )
                samples = rule.alerting.series()
            else:
                samples = self._recorded(rule, vector)
            self._write(rule, samples, query_ms, storage)
        except SoulwatchError as exc:
            error = exc
        except Exception as exc:
            # A bug in one rule's evaluation (or in the engine) must not stop
            # the group: record it on the rule like any evaluation error.
            error = RuleEvaluationError(f"{type(exc).__name__}: {exc}")
        rule.last_evaluation = ts
        rule.evaluation_seconds = time.perf_counter() - started
        rule.health = RuleHealth.ERR if error else RuleHealth.OK
        rule.last_error = str(error) if error else None
        return RuleOutcome(rule, transitions, error)

    def _recorded(self, rule: Rule, vector: Sequence[Sample]) -> list[tuple[Labels, float]]:
        extra = {**rule.group_labels, **rule.spec.labels, METRIC_NAME: rule.spec.name}
        out: dict[Labels, float] = {}
        for sample in vector:
            lbls = sample.labels.with_(extra)
            if lbls in out:
                raise RuleEvaluationError(
                    "vector contains metrics with the same labelset after applying rule labels"
                )
            out[lbls] = sample.value
        if 0 < self.spec.limit < len(out):
            raise RuleEvaluationError(f"exceeded limit of {self.spec.limit} with {len(out)} series")
        return list(out.items())

    @staticmethod
    def _write(
        rule: Rule, samples: Sequence[tuple[Labels, float]], t_ms: int, storage: Storage
    ) -> None:
        if rule.writer is None:
            rule.writer = SeriesWriter(storage, strict=True, name=f"results of {rule.name}")
        # A series the rule no longer produces ends now, as in Prometheus.
        rule.writer.write(t_ms, dict(samples))
