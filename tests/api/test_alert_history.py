"""`/api/v1/alerts/history` over real uvicorn and a real SQLite store, while rules evaluate."""

from __future__ import annotations

import asyncio
from pathlib import Path

from soulwatch.api.views import RuleManagerView
from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.rules.evaluator import RuleManager
from soulwatch.rules.store import AlertStateStore
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.api.support import serve

RULES = """\
groups:
  - name: poller
    interval: 10s
    rules:
      - alert: PollerLag
        expr: poller_lag_seconds > 300
        for: 20s
"""


class _Sink:
    async def send(self, alerts: object) -> None:
        return None


async def test_history_is_read_off_the_loop_while_the_evaluator_writes(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    store = AlertStateStore.in_data_dir(tmp_path)
    manager = RuleManager(
        engine=Engine(storage, clock=clock),
        storage=storage,
        sink=_Sink(),
        clock=clock,
        store=store,
    )
    (tmp_path / "rules.yml").write_text(RULES)
    manager.load([tmp_path / "rules.yml"])
    lag = Labels.of(__name__="poller_lag_seconds", project="p1")
    try:
        with serve(tmp_path, clock, rules=RuleManagerView(manager)) as served:
            responses: list[list[tuple[str, str]]] = []
            # The lag goes over the threshold, stays (pending -> firing), then recovers;
            # between evaluations (on this loop) the API reads the history in its own
            # server thread and worker threads.
            for step, value in enumerate([400, 400, 400, 400, 10, 10]):
                t = clock.time()
                app = storage.appender()
                app.append(lag, round(t * 1000), float(value))
                app.commit()
                await manager.evaluate_all(t)
                r = await asyncio.to_thread(served.http.get, "/api/v1/alerts/history")
                assert r.status_code == 200, r.text
                history = r.json()["history"]
                responses.append([(h["from"], h["to"]) for h in history])
                assert all(h["alertname"] == "PollerLag" for h in history), step
                assert all(h["labels"]["project"] == "p1" for h in history), step
                await clock.advance(10)
        assert responses[0] == [("inactive", "pending")]
        assert responses[2][0] == ("pending", "firing")
        assert responses[-1] == [
            ("firing", "inactive"),
            ("pending", "firing"),
            ("inactive", "pending"),
        ]
    finally:
        store.close()
