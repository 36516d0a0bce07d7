"""Shared pieces of the rules tests: a recording alert sink and input data."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from soulwatch.alerts import Alert
from soulwatch.clock import Clock
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels


@dataclass
class RecordingSink:
    """An AlertSink that keeps every batch it receives, stamped with the clock's time."""

    clock: Clock
    batches: list[tuple[float, list[Alert]]] = field(default_factory=list)

    async def send(self, alerts: Sequence[Alert]) -> None:
        self.batches.append((self.clock.time(), list(alerts)))

    def sent(self, alertname: str | None = None) -> list[tuple[float, Alert]]:
        """Every (time, alert) received, optionally for one alert name."""
        return [
            (t, a)
            for t, batch in self.batches
            for a in batch
            if alertname is None or a.name == alertname
        ]

    def firing(self, alertname: str) -> list[tuple[float, Alert]]:
        """The sends of ``alertname`` while it was firing (no ends_at)."""
        return [(t, a) for t, a in self.sent(alertname) if a.ends_at is None]

    def resolved(self, alertname: str) -> list[tuple[float, Alert]]:
        """The sends of ``alertname`` announcing its resolution."""
        return [(t, a) for t, a in self.sent(alertname) if a.ends_at is not None]


def fill(
    storage: MemoryStorage,
    labels: Labels,
    start: float,
    end: float,
    value: float,
    *,
    step: float = 15.0,
) -> None:
    """Samples of ``value`` every ``step`` seconds in ``[start, end]``."""
    t = start
    while t <= end:
        storage.add(labels, round(t * 1000), value)
        t += step


def write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` and return the path."""
    path.write_text(text, encoding="utf-8")
    return path


#: One alerting rule with a 2-minute ``for``, evaluated every 15 seconds.
RESTART_RULES = """
groups:
  - name: restart
    interval: 15s
    rules:
      - alert: QueueStuck
        expr: queue_depth > 10
        for: 2m
        labels:
          severity: page
        annotations:
          summary: "queue depth is {{ $value }}"
"""

QUEUE = Labels.of(__name__="queue_depth", queue="agents")


def restart_storage(start: float) -> MemoryStorage:
    """The queue is deep (50) from 10 minutes before ``start`` to an hour after it."""
    storage = MemoryStorage()
    fill(storage, QUEUE, start - 600, start + 3600, 50.0)
    return storage
