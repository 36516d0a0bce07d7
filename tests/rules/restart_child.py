"""Child process of the kill -9 restart test.

Runs the rule manager on a simulated clock until the alert has been pending
for 90 seconds, prints ``READY <time>`` and then waits to be killed.
Usage: python -m tests.rules.restart_child RULES_FILE DATA_DIR START
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from tests.rules.support import RecordingSink, restart_storage


async def main(rules: Path, data_dir: Path, start: float) -> None:
    clock = SimulatedClock(start=start)
    storage = restart_storage(start)
    store = AlertStateStore.in_data_dir(data_dir)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=RecordingSink(clock),
        clock=clock,
        store=store,
    )
    manager.load([rules])
    await manager.start()
    pending_at = None
    for _ in range(100):  # bounded: the first evaluation is at most 15 s away
        await clock.advance(5)
        if manager.active_alerts():
            pending_at = manager.active_alerts()[0].active_at
            break
    assert pending_at is not None, "the alert never became pending"
    await clock.advance(pending_at + 90 - clock.time())
    print(f"READY {clock.time()} {pending_at}", flush=True)
    # Wait to be killed; give up after a minute so a broken test cannot leak us.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.1)  # block (not yield) until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])))
