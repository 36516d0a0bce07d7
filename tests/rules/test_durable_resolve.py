"""A saved resolve reaches the alert sink after a restart, even when the alert is back.

The process dies after the rule resolved an alert (state saved) but before the
sink passed the resolve on. After the restart the condition is true again: the
first evaluation must hand the sink the old episode's resolve first, then the
new episode.
"""

from __future__ import annotations

from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.memory import MemoryStorage
from tests.rules.support import QUEUE, RecordingSink, fill, write

RULES = """
groups:
  - name: flap
    interval: 15s
    rules:
      - alert: QueueStuck
        expr: queue_depth > 10
"""


def _manager(clock, data_dir: Path, storage: MemoryStorage, sink: RecordingSink) -> RuleManager:
    return RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=sink,
        clock=clock,
        store=AlertStateStore.in_data_dir(data_dir),
    )


async def test_resolve_saved_before_a_crash_is_sent_before_the_next_episode(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    rules = write(tmp_path / "rules.yml", RULES)
    t0 = clock.time()
    storage = MemoryStorage()
    fill(storage, QUEUE, t0, t0 + 60, 50.0)  # deep for a minute, then drained
    fill(storage, QUEUE, t0 + 75, t0 + 600, 1.0, step=15)
    first_sink = RecordingSink(clock)
    first = _manager(clock, tmp_path, storage, first_sink)
    first.load([rules])
    await first.start()
    await clock.advance(150)
    [(_, episode1)] = first_sink.firing("QueueStuck")[:1]
    assert first_sink.resolved("QueueStuck"), "resolved and handed to the sink"
    # The process dies here: the sink's memory is gone (no stop, no flush).
    await first.stop()
    assert first.store is not None
    first.store.close()

    # The queue is deep again when the next process starts.
    fill(storage, QUEUE, clock.time() - 30, clock.time() + 600, 50.0)
    sink = RecordingSink(clock)
    second = _manager(clock, tmp_path, storage, sink)
    second.load([rules])
    await second.start()
    await clock.advance(16)
    [(_, batch)] = sink.batches[:1]
    statuses = ["resolved" if a.ends_at is not None else "firing" for a in batch]
    assert statuses == ["resolved", "firing"], "the old episode's resolve first, then the new"
    resolve, page = batch
    assert resolve.starts_at == episode1.starts_at
    assert page.starts_at > episode1.starts_at
    await second.stop()
    assert second.store is not None
    second.store.close()
