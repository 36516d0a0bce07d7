"""Alert state survives a restart: a pending timer continues, firing is sent once.

The rule has ``for: 2m``; the process stops (cleanly, or by SIGKILL) after the
alert has been pending for 90 s. The next process restores the state from
SQLite and fires 30 s after its start, exactly once.
"""

from __future__ import annotations

import itertools
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


async def _after_restart(
    clock: SimulatedClock, data_dir: Path, rules: Path, pending_at: float, downtime: float = 0
) -> None:
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
    assert manager.active_alerts()[0].active_at == pending_at + downtime
    # Until the resend delay (60 s) has passed, nothing is sent again.
    await clock.advance(55)
    assert len(sink.firing("QueueStuck")) == 1
    await manager.stop()
    history = manager.history(alertname="QueueStuck")
    assert [(t.t, t.from_state, t.to_state) for t in reversed(history)] == [
        # The pending timer was shifted by the downtime, so it still needs 30 s.
        (pending_at, AlertState.INACTIVE, AlertState.PENDING),
        (restarted_at + 30, AlertState.PENDING, AlertState.FIRING),
    ]
    assert manager.store is not None
    manager.store.close()


@pytest.mark.parametrize("downtime", [0, 600])
async def test_pending_timer_continues_after_a_clean_restart(
    tmp_path: Path, clock: SimulatedClock, downtime: float
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

    # Time the monitor was down does not count towards `for`.
    clock.set_time(clock.time() + downtime)
    await _after_restart(clock, tmp_path, rules, pending.active_at, downtime)


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


async def test_a_firing_alert_stays_firing_and_one_resolved_while_down_resolves(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    rules = write(tmp_path / "rules.yml", RESTART_RULES)
    sink = RecordingSink(clock)
    manager = _manager(clock, tmp_path, sink)
    manager.load([rules])
    await manager.start()
    await clock.advance(200)
    fired = sink.firing("QueueStuck")[0][1]
    last_sent = sink.firing("QueueStuck")[-1][0]
    await manager.stop()
    assert manager.store is not None
    manager.store.close()

    # Restart: still firing with the same starts_at and no new transition. The
    # alert sink kept nothing across the restart, so the first evaluation hands
    # it the alert again, then every resend delay; each carries the same
    # episode (fingerprint and starts_at), which the alerting side
    # deduplicates. Then the queue drains while the monitor is down again.
    sink2 = RecordingSink(clock)
    second = _manager(clock, tmp_path, sink2)
    second.load([rules])
    second_start = clock.time()
    await second.start()
    await clock.advance(15)
    assert [a.state for a in second.active_alerts()] == [AlertState.FIRING]
    await clock.advance(120)
    resent = sink2.firing("QueueStuck")
    assert resent
    assert all(a.starts_at == fired.starts_at for _, a in resent)
    assert all(a.fingerprint == fired.fingerprint for _, a in resent)
    send_times = [t for t, _ in resent]
    assert last_sent < second_start < send_times[0] <= second_start + 15, "at the first evaluation"
    assert all(b - a > 60 for a, b in itertools.pairwise(send_times))
    await second.stop()
    assert second.store is not None
    second.store.close()

    clock.set_time(clock.time() + 600)
    sink3 = RecordingSink(clock)
    storage = restart_storage(1_700_000_000.0)
    storage.clear()  # the queue metric is gone: the condition ended while we were down
    third = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=sink3,
        clock=clock,
        store=AlertStateStore.in_data_dir(tmp_path),
    )
    third.load([rules])
    restarted_at = clock.time()
    await third.start()
    await clock.advance(15)
    [(sent_at, resolved)] = sink3.resolved("QueueStuck")
    assert sent_at == resolved.ends_at
    assert restarted_at < resolved.ends_at <= restarted_at + 15
    assert resolved.starts_at == fired.starts_at
    await third.stop()
    transitions = [(t.from_state, t.to_state) for t in reversed(third.history())]
    assert transitions == [
        (AlertState.INACTIVE, AlertState.PENDING),
        (AlertState.PENDING, AlertState.FIRING),
        (AlertState.FIRING, AlertState.INACTIVE),
    ]
    assert third.store is not None
    third.store.close()
