"""Reloading rule groups as Prometheus does: equal groups run on, removed rules end at once."""

from __future__ import annotations

from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.memory import MemoryStorage
from tests.rules.support import RecordingSink, write

STEADY = (
    "  - name: steady\n    interval: 10s\n    rules:\n"
    "      - alert: Slow\n        expr: vector(1)\n        for: 10m\n"
    "      - record: steady:one\n        expr: vector(1)\n"
)


def _manager(tmp_path: Path, clock: SimulatedClock, storage: MemoryStorage) -> RuleManager:
    return RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=RecordingSink(clock),
        clock=clock,
        store=AlertStateStore.in_data_dir(tmp_path),
    )


def _now(manager: RuleManager, clock: SimulatedClock, query: str) -> list[float]:
    result = manager.engine.instant(query, round(clock.time() * 1000))
    return [s.value for s in result.value]  # type: ignore[union-attr]


async def test_an_unchanged_group_runs_on_through_a_reload(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    manager = _manager(tmp_path, clock, storage)
    rules = tmp_path / "rules.yml"
    manager.load([write(rules, "groups:\n" + STEADY)])
    await manager.start()
    try:
        for _ in range(4):
            await clock.advance(10)
        (before,) = manager.groups()
        assert before.last_evaluation is not None
        # Another group is added above it: its place in the file changes, nothing else.
        other = "  - name: other\n    rules:\n      - record: other:two\n        expr: vector(2)\n"
        write(rules, "groups:\n" + other + STEADY)
        manager.reload()
        steady = next(g for g in manager.groups() if g.name == "steady")
        # Not restarted: what the API shows of its last run is still there.
        assert steady.last_evaluation == before.last_evaluation
        assert steady.evaluation_seconds == before.evaluation_seconds
        assert steady.rules[0].alerts[0].active_at == before.rules[0].alerts[0].active_at
        await clock.advance(10)
        steady = next(g for g in manager.groups() if g.name == "steady")
        assert steady.last_evaluation == before.last_evaluation + 10
    finally:
        await manager.stop()


async def test_a_removed_recording_rule_is_stale_at_once(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    manager = _manager(tmp_path, clock, storage)
    rules = tmp_path / "rules.yml"
    gone = "      - record: gone:three\n        expr: vector(3)\n"
    manager.load([write(rules, "groups:\n" + STEADY + gone)])
    await manager.start()
    try:
        for _ in range(3):
            await clock.advance(10)
        assert _now(manager, clock, "gone:three") == [3.0]
        write(rules, "groups:\n" + STEADY)
        manager.reload()
        # Prometheus marks it stale at once; without that it would answer for 5 minutes.
        assert _now(manager, clock, "gone:three") == []
        await clock.advance(10)
        assert _now(manager, clock, "gone:three") == []
        assert _now(manager, clock, "steady:one") == [1.0]
    finally:
        await manager.stop()
