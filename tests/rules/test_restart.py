"""Alert state survives a restart: a pending timer continues, firing is sent once.

The rule has ``for: 2m``; the process stops (cleanly, or by SIGKILL) after the
alert has been pending for 90 s. The next process restores the state from
SQLite and fires 30 s after its start, exactly once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soulwatch.alerts import AlertState
from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from tests.helpers import REPO, subprocess_env
from tests.rules.support import RESTART_RULES, RecordingSink, restart_storage, write


def _manager(clock: SimulatedClock, data_dir: Path, sink: RecordingSink) -> RuleManager:
    storage = restart_storage(1_700_000_000.0)
    return RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=sink,
        clock=clock,
        store=AlertStateStore.in_data_dir(data_dir),
    )


async def _after_restart(clock: SimulatedClock, data_dir: Path, rules: Path, pending_at: float):
    restarted_at = clock.time()
    sink = RecordingSink(clock)
    manager = _manager(clock, data_dir, sink)
    manager.load([rules])
    # The restored alert is pending again right away, with its original timer.
    [restored] = manager.active_alerts()
    assert restored.state is AlertState.PENDING
    assert restored.active_at == pending_at
    await manager.start()
    await clock.advance(29)
    assert sink.firing("QueueStuck") == []
    await clock.advance(1)
    [(sent_at, alert)] = sink.firing("QueueStuck")
    assert sent_at == restarted_at + 30
    assert alert.starts_at == restarted_at + 30
    # Until the resend delay (60 s) has passed, nothing is sent again.
    await clock.advance(55)
    assert len(sink.firing("QueueStuck")) == 1
    await manager.stop()
    history = manager.history(alertname="QueueStuck")
    assert [(t.t, t.from_state, t.to_state) for t in reversed(history)] == [
        (pending_at, AlertState.INACTIVE, AlertState.PENDING),
        (restarted_at + 30, AlertState.PENDING, AlertState.FIRING),
    ]
    assert manager.store is not None
    manager.store.close()


async def test_pending_timer_continues_after_a_clean_restart(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    rules = write(tmp_path / "rules.yml", RESTART_RULES)
    sink = RecordingSink(clock)
    manager = _manager(clock, tmp_path, sink)
    manager.load([rules])
    await manager.start()
    await clock.advance(15)
    [pending] = manager.active_alerts()
    assert pending.state is AlertState.PENDING
    await clock.advance(pending.active_at + 90 - clock.time())
    assert manager.active_alerts()[0].state is AlertState.PENDING
    await manager.stop()
    assert manager.store is not None
    manager.store.close()
    assert sink.batches == []

    await _after_restart(clock, tmp_path, rules, pending.active_at)


@pytest.mark.slow
async def test_pending_timer_continues_after_kill_9(tmp_path: Path) -> None:
    rules = write(tmp_path / "rules.yml", RESTART_RULES)
    argv = [sys.executable, "-m", "tests.rules.restart_child", str(rules), str(tmp_path)]
    with subprocess.Popen(
        [*argv, "1700000000"],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stderr is not None
            line = child.stdout.readline().decode()
            if not line.startswith("READY"):
                child.kill()
                pytest.fail(f"child did not get ready: {line}{child.stderr.read().decode()}")
            child.kill()  # SIGKILL: no clean shutdown, no final flush
            child.wait(timeout=10)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
    _, now, pending_at = line.split()
    clock = SimulatedClock(start=float(now))
    await _after_restart(clock, tmp_path, rules, float(pending_at))
