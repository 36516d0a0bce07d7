"""A group's alert state saved in one transaction, and label JSON reused between saves."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from soulwatch.alerts import AlertState
from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import StorageError
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.group import RuleHealth
from soulwatch.rules.state import ActiveAlert, Transition
from soulwatch.rules.store import AlertStateStore, RuleSave
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.rules.support import RecordingSink, fill, write

START = 1_700_000_000.0


def _alert(name: str, instance: str, summary: str, at: float) -> ActiveAlert:
    return ActiveAlert(
        labels=Labels.of(alertname=name, instance=instance),
        annotations={"summary": summary},
        state=AlertState.FIRING,
        active_at=at,
        value=1.0,
        fired_at=at,
    )


def _went_firing(rule: str, alert: ActiveAlert) -> Transition:
    return Transition(
        alert.active_at,
        rule,
        alert.labels.get("alertname"),
        alert.labels,
        AlertState.PENDING,
        AlertState.FIRING,
        1.0,
    )


def test_a_group_is_saved_whole_or_not_at_all(tmp_path: Path) -> None:
    store = AlertStateStore.in_data_dir(tmp_path)
    a1, b1 = _alert("A", "x", "first", 1.0), _alert("B", "y", "first", 1.0)
    store.save_many(
        [
            RuleSave("g/A", [a1], [_went_firing("g/A", a1)]),
            RuleSave("g/B", [b1], [_went_firing("g/B", b1)]),
        ],
        1.0,
    )
    assert {
        rule: [a.labels.get("instance") for a in alerts] for rule, alerts in store.load().items()
    } == {
        "g/A": ["x"],
        "g/B": ["y"],
    }
    assert store.last_evaluations() == {"g/A": 1.0, "g/B": 1.0}

    # The second rule's instance cannot be stored (a time SQLite cannot bind):
    # the first rule's new state, written before it in the same transaction, is rolled back.
    a2 = _alert("A", "z", "second", 2.0)
    broken = _alert("B", "y", "second", 2.0)
    broken.active_at = object()  # type: ignore[assignment]
    with pytest.raises(StorageError, match="g/A, g/B"):
        store.save_many(
            [RuleSave("g/A", [a2], [_went_firing("g/A", a2)]), RuleSave("g/B", [broken], [])], 2.0
        )
    loaded = store.load()
    assert [a.labels.get("instance") for a in loaded["g/A"]] == ["x"]
    assert [a.annotations for a in loaded["g/B"]] == [{"summary": "first"}]
    assert store.last_evaluations() == {"g/A": 1.0, "g/B": 1.0}
    assert len(store.history()) == 2
    assert store.last_error is not None
    store.close()


def test_changed_annotations_of_the_same_instance_are_saved(tmp_path: Path) -> None:
    store = AlertStateStore.in_data_dir(tmp_path)
    for i, summary in enumerate(["at 1", "at 2", "at 1"]):
        alert = _alert("A", "x", summary, 1.0)
        store.save("g/A", [alert], [], float(i))
        (saved,) = store.load()["g/A"]
        assert saved.annotations == {"summary": summary}
        assert saved.labels == alert.labels
    # Same content in another order: the same row.
    alert = _alert("A", "x", "at 3", 1.0)
    alert.annotations = {"zz": "1", "summary": "at 3"}
    store.save("g/A", [alert], [], 3.0)
    assert store.load()["g/A"][0].annotations == {"summary": "at 3", "zz": "1"}
    with sqlite3.connect(tmp_path / "alerts.sqlite") as raw:
        (text,) = raw.execute("SELECT annotations FROM alert_state").fetchone()
    assert text == '{"summary": "at 3", "zz": "1"}'
    store.close()


_TWO_RULES = """
groups:
  - name: pair
    interval: 15s
    rules:
      - alert: HighA
        expr: a > 1
        annotations: {summary: "a at {{ $value }}"}
      - record: a:copy
        expr: a
      - alert: HighB
        expr: b > 1
"""


async def test_the_evaluator_saves_every_alerting_rule_of_a_group_at_once(tmp_path: Path) -> None:
    clock = SimulatedClock(start=START)
    storage = MemoryStorage()
    fill(storage, Labels.of(__name__="a", job="j"), START - 60, START + 60, 5.0)
    fill(storage, Labels.of(__name__="b", job="j"), START - 60, START + 60, 7.0)
    store = AlertStateStore.in_data_dir(tmp_path)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=RecordingSink(clock),
        clock=clock,
        store=store,
    )
    manager.load([write(tmp_path / "rules.yml", _TWO_RULES)])
    await manager.evaluate_all(START)
    saved = store.load()
    assert sorted(key.split(";")[2] for key in saved) == ["HighA", "HighB"]
    (high_a,) = [alerts for key, alerts in saved.items() if key.split(";")[2] == "HighA"]
    assert [a.annotations for a in high_a] == [{"summary": "a at 5"}]
    assert len(store.history()) == 2  # both went pending
    assert set(store.last_evaluations().values()) == {START}

    # The store fails (closed under the evaluator): every alerting rule of the group says so.
    store.close()
    clock.set_time(START + 15)
    await manager.evaluate_all(START + 15)
    rules = [r for g in manager.groups() for r in g.rules]
    failed = {r.name: r.health for r in rules}
    assert failed == {"HighA": RuleHealth.ERR, "a:copy": RuleHealth.OK, "HighB": RuleHealth.ERR}
