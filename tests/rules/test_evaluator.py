"""The rule manager over the real PromQL engine and storage, on the simulated clock."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from soulwatch.alerts import Alert, AlertState
from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import DeliveryError
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.group import RuleHealth
from soulwatch.rules.loader import RuleFileProblems
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Matcher, is_stale_nan
from tests.rules.support import RecordingSink, fill, write

START = 1_700_000_000.0


def _manager(
    tmp_path: Path,
    clock: SimulatedClock,
    text: str,
    storage: MemoryStorage,
    *,
    registry: CollectorRegistry | None = None,
) -> tuple[RuleManager, RecordingSink]:
    sink = RecordingSink(clock)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=sink,
        clock=clock,
        store=AlertStateStore.in_data_dir(tmp_path),
        registry=registry,
        external_labels={"cluster": "eu-1"},
    )
    manager.load([write(tmp_path / "rules.yml", text)])
    return manager, sink


def _values(storage: MemoryStorage, name: str, **labels: str) -> list[tuple[float, float]]:
    matchers = [Matcher.equal("__name__", name)]
    matchers += [Matcher.equal(k, v) for k, v in labels.items()]
    return [
        (t / 1000, v)
        for s in storage.select(matchers, 0, 2**62)
        for t, v in zip(*_tv(s), strict=True)
    ]


def _tv(series: object) -> tuple[list[int], list[float]]:
    return series.timestamps, series.values  # type: ignore[attr-defined]


async def test_recording_rules_write_results_with_rule_and_group_labels(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    fill(
        storage, Labels.of(__name__="requests_total", job="api", i="a"), START - 600, START + 600, 5
    )
    fill(
        storage, Labels.of(__name__="requests_total", job="api", i="b"), START - 600, START + 600, 7
    )
    manager, _ = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: rec
    interval: 30s
    labels: {team: core}
    rules:
      - record: job:requests:sum
        expr: sum by (job) (requests_total)
        labels: {source: rule}
      - record: job:requests:doubled
        expr: job:requests:sum * 2
""",
        storage,
    )
    [group] = manager._groups
    await manager.evaluate_group(group, START)
    [(t, v)] = _values(storage, "job:requests:sum", job="api", team="core", source="rule")
    assert (t, v) == (START, 12.0)
    # The second rule sees the first one's result of the same evaluation.
    [(t2, v2)] = _values(storage, "job:requests:doubled")
    assert (t2, v2) == (START, 24.0)
    [status] = manager.groups()
    assert [r.health for r in status.rules] == [RuleHealth.OK, RuleHealth.OK]


async def test_groups_evaluate_at_aligned_timestamps_on_the_clock(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    text = """
groups:
  - name: a
    interval: 20s
    rules:
      - record: one
        expr: vector(1)
"""
    manager, _ = _manager(tmp_path, clock, text, storage)
    # A second instance with the same rule file (same path, as on two replicas).
    other_storage = MemoryStorage()
    other, _ = _manager(tmp_path, clock, text, other_storage)
    await manager.start()
    await other.start()
    await clock.advance(100)
    await manager.stop()
    await other.stop()
    times = [t for t, _ in _values(storage, "one")]
    assert len(times) == 5
    assert all(b - a == 20 for a, b in itertools.pairwise(times))
    offset = manager._groups[0].offset_s()
    assert all(math.isclose((t - offset) % 20, 0, abs_tol=1e-6) for t in times)
    # The second instance evaluates at the same instants.
    assert [t for t, _ in _values(other_storage, "one")] == times


async def test_a_failing_rule_is_recorded_and_does_not_stop_the_others(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="x", a="1"), START - 60, START + 60, 1)
    fill(storage, Labels.of(__name__="x", a="2"), START - 60, START + 60, 2)
    registry = CollectorRegistry()
    manager, _ = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: g
    rules:
      - record: collapsed
        expr: x
        labels: {a: same}
      - alert: StillEvaluated
        expr: x > 1
""",
        storage,
        registry=registry,
    )
    await manager.evaluate_group(manager._groups[0], START)
    broken, alert = manager.groups()[0].rules
    assert broken.health is RuleHealth.ERR
    assert broken.last_error is not None
    assert "same labelset" in broken.last_error
    assert alert.health is RuleHealth.OK
    assert [a.labels.get("a") for a in alert.alerts] == ["2"]
    key = f"{tmp_path / 'rules.yml'};g"
    assert (
        registry.get_sample_value("soulwatch_rule_evaluation_failures_total", {"rule_group": key})
        == 1
    )


async def test_alerts_series_and_notifications_follow_the_alert(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="temp", room="lab"), START, START + 300, 90)
    manager, sink = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: g
    interval: 60s
    rules:
      - alert: Hot
        expr: temp > 80
        for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.room }} is {{ $value }} in {{ $externalLabels.cluster }}"
""",
        storage,
    )
    group = manager._groups[0]
    for minute in range(0, 31):
        clock.set_time(START + 60 * minute)
        await manager.evaluate_group(group, clock.time())
    alerts_series = _values(storage, "ALERTS", alertname="Hot", alertstate="pending")
    assert [t for t, v in alerts_series if not is_stale_nan(v)] == [START, START + 60]
    assert is_stale_nan(alerts_series[-1][1])
    firing = [
        (t, v) for t, v in _values(storage, "ALERTS", alertstate="firing") if not is_stale_nan(v)
    ]
    # The last sample (t=300) stays visible for the 5-minute lookback: firing until 540.
    assert [t for t, _ in firing] == [START + s for s in range(120, 541, 60)]
    for_state = _values(storage, "ALERTS_FOR_STATE", alertname="Hot")
    assert {v for _, v in for_state if not is_stale_nan(v)} == {START}

    sent = sink.sent("Hot")
    first_t, first = sent[0]
    assert first_t == START + 120
    assert first.starts_at == START + 120
    assert first.ends_at is None
    assert first.annotations["summary"] == "lab is 90 in eu-1"
    assert first.labels == Labels.of(alertname="Hot", room="lab", severity="page")
    # Firing alerts are re-sent after the 1m resend delay (so every other minute here).
    assert [t - START for t, _ in sink.firing("Hot")] == [120, 240, 360, 480]
    resolved = sink.resolved("Hot")
    assert resolved
    resolved_at = resolved[0][1].ends_at
    assert resolved_at == START + 600
    assert resolved[0][0] == resolved_at
    # Resolved alerts are re-sent for 15 minutes, then forgotten.
    assert all(t - resolved_at <= 15 * 60 for t, _ in resolved)
    assert len(resolved) >= 2
    assert manager.active_alerts() == []
    states = [(t.from_state, t.to_state) for t in reversed(manager.history())]
    assert states == [
        (AlertState.INACTIVE, AlertState.PENDING),
        (AlertState.PENDING, AlertState.FIRING),
        (AlertState.FIRING, AlertState.INACTIVE),
    ]


async def test_a_bad_reload_keeps_the_previous_rules(tmp_path: Path, clock: SimulatedClock) -> None:
    storage = MemoryStorage()
    manager, _ = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: g
    interval: 10s
    rules:
      - record: good
        expr: vector(1)
""",
        storage,
    )
    await manager.start()
    write(
        tmp_path / "rules.yml",
        """
groups:
  - name: g
    rules:
      - record: good
        expr: sum(vector(1)
""",
    )
    with pytest.raises(RuleFileProblems) as info:
        manager.reload()
    assert str(info.value).startswith(f"{tmp_path / 'rules.yml'}:6:")
    assert "could not parse expression" in str(info.value)
    await clock.advance(30)
    await manager.stop()
    assert [r.name for g in manager.groups() for r in g.rules] == ["good"]
    assert len(_values(storage, "good")) == 3


async def test_limit_and_query_offset(tmp_path: Path, clock: SimulatedClock) -> None:
    storage = MemoryStorage()
    for i in range(3):
        fill(storage, Labels.of(__name__="q", i=str(i)), START - 120, START - 60, i)
    manager, _ = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: offset
    query_offset: 1m
    rules:
      - record: q_copy
        expr: q
  - name: limited
    limit: 2
    query_offset: 1m
    rules:
      - alert: TooMany
        expr: q >= 0
""",
        storage,
    )
    offset_group, limited = manager._groups
    await manager.evaluate_group(offset_group, START)
    # Evaluated one minute in the past, and stamped there.
    assert sorted(_values(storage, "q_copy")) == [(START - 60, 0), (START - 60, 1), (START - 60, 2)]
    await manager.evaluate_group(limited, START)
    [rule] = manager.groups()[1].rules
    assert rule.health is RuleHealth.ERR
    assert rule.last_error == "exceeded limit of 2 with 3 alerts"
    assert rule.alerts == ()


class _FlakySink(RecordingSink):
    """Refuses the first batch, then records."""

    refused: int = 0

    async def send(self, alerts: Sequence[Alert]) -> None:
        if self.refused == 0:
            self.refused += 1
            raise DeliveryError("receiver down", permanent=False)
        await super().send(alerts)


async def test_alerts_the_sink_refused_are_sent_again(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="x"), START - 60, START + 600, 1)
    registry = CollectorRegistry()
    sink = _FlakySink(clock)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=sink,
        clock=clock,
        registry=registry,
    )
    manager.load([write(tmp_path / "r.yml", "groups: [{name: g, rules: [{alert: X, expr: x}]}]")])
    group = manager._groups[0]
    clock.set_time(START)
    await manager.evaluate_group(group, START)
    assert sink.batches == []
    assert registry.get_sample_value("soulwatch_rule_alert_send_failures_total") == 1
    # Not marked as sent, so the next evaluation sends it (no resend delay wait).
    clock.set_time(START + 15)
    await manager.evaluate_group(group, START + 15)
    [(t, alert)] = sink.firing("X")
    assert (t, alert.starts_at) == (START + 15, START)


def test_generator_url_links_to_the_expression() -> None:
    from soulwatch.rules.evaluator import generator_url

    assert generator_url("", "up == 0") == ""
    assert generator_url("http://sw:9090/", "up == 0") == (
        "http://sw:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1"
    )


async def test_reload_carries_state_over_and_a_longer_for_returns_to_pending(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="x"), START - 60, START + 900, 1)
    text = "groups: [{name: g, interval: 1m, rules: [{alert: X, expr: x, for: %s}]}]"
    manager, _ = _manager(tmp_path, clock, text % "1m", storage)
    for minute in range(3):
        await manager.evaluate_group(manager._groups[0], START + 60 * minute)
    assert [a.state for a in manager.active_alerts()] == [AlertState.FIRING]
    write(tmp_path / "rules.yml", text % "10m")
    manager.reload()
    [alert] = manager.active_alerts()
    assert alert.active_at == START  # carried over
    await manager.evaluate_group(manager._groups[0], START + 180)
    assert [a.state for a in manager.active_alerts()] == [AlertState.PENDING]
    await manager.evaluate_group(manager._groups[0], START + 600)
    assert [a.state for a in manager.active_alerts()] == [AlertState.FIRING]


async def test_alert_labels_replace_remove_and_collide_as_in_prometheus(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    # A rule label overrides the sample's, an empty one removes it, the name
    # goes; two instances left with one labelset make the rule fail.
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="x", a="1", b="k", c="drop"), START - 60, START + 60, 1)
    fill(storage, Labels.of(__name__="x", a="2", b="k", c="drop"), START - 60, START + 60, 2)
    manager, _ = _manager(
        tmp_path,
        clock,
        """
groups:
  - name: g
    rules:
      - alert: Kept
        expr: x > 0
        labels: {b: "{{ $labels.a }}-{{ $value }}", c: ""}
      - alert: Collide
        expr: x > 0
        labels: {a: same}
""",
        storage,
    )
    await manager.evaluate_group(manager._groups[0], START)
    kept, collide = manager.groups()[0].rules
    assert sorted(tuple(a.labels) for a in kept.alerts) == [
        (("a", "1"), ("alertname", "Kept"), ("b", "1-1")),
        (("a", "2"), ("alertname", "Kept"), ("b", "2-2")),
    ]
    assert collide.health is RuleHealth.ERR
    assert collide.last_error is not None
    assert "same labelset after applying alert labels" in collide.last_error
