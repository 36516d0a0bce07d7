"""What the outbox holds in memory while its database cannot be written, kept bounded.

On a full disk every new notification lives only in memory until it can be
written. Two rules keep that memory bounded however many alerts fire:

* **Supersede.** A notification carries the whole current state of its alert
  group, so a later one for the same integration and group replaces an
  earlier one not yet written (sent or not): at most one per group, plus
  the ones being sent at that moment.
* **Cap.** Past ``delivery.max_held`` rows, the oldest are dropped in this
  order: records of notifications already delivered (only their history is
  lost), then resolved notifications not yet sent, then firing ones. A
  firing page is the last thing given up.

A dropped notification not yet sent is counted in
``soulwatch_notifications_dropped_total{reason}`` (``superseded`` or
``overflow``) and logged, at most once per :data:`LOG_EVERY` seconds with
the counts since the last line. The outbox forgets the log entry of a group
whose unsent notification it dropped, so the dispatcher notifies that group
again at its next ``group_interval`` tick: a firing page dropped this way
goes out once space is back.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Collection, Iterable
from enum import Enum

import structlog
from prometheus_client import CollectorRegistry, Counter

from soulwatch.alerting.message import Status
from soulwatch.alerting.outbox_rows import PendingRow, RowState

_log = structlog.get_logger("soulwatch.outbox")

#: Seconds between two log lines about dropped notifications.
LOG_EVERY = 60.0


class DropReason(Enum):
    """The ``reason`` label of ``soulwatch_notifications_dropped_total``."""

    SUPERSEDED = "superseded"
    OVERFLOW = "overflow"


def superseded(
    rows: Iterable[PendingRow], row: PendingRow, busy: Collection[int], *, newer_only: bool = False
) -> list[PendingRow]:
    """Rows only in memory of ``row``'s lane, older than it (newer with ``newer_only``),
    and not being sent: those ``row`` replaces (or that replace it)."""
    return [
        r
        for r in rows
        if r.id is None
        and r.lane == row.lane
        and (r.seq > row.seq if newer_only else r.seq < row.seq)
        and r.seq not in busy
    ]


def overflow(rows: Iterable[PendingRow], limit: int, busy: Collection[int]) -> list[PendingRow]:
    """The rows only in memory to drop so that at most ``limit`` remain, in the order
    of the module docstring (oldest first within each kind)."""
    held = [r for r in rows if r.id is None]
    excess = len(held) - limit
    if excess <= 0:
        return []

    def rank(r: PendingRow) -> tuple[int, int]:
        if r.state is not RowState.PENDING:
            kind = 0
        elif r.notification.status is Status.RESOLVED:
            kind = 1
        else:
            kind = 2
        return (kind, r.seq)

    candidates = sorted((r for r in held if r.seq not in busy), key=rank)
    return candidates[:excess]


class DropLog:
    """Counts dropped notifications (a metric) and logs them at most once per period."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.dropped = Counter(
            "soulwatch_notifications_dropped",
            "Notifications held in memory (the outbox could not be written) dropped"
            " before they were sent: superseded by a later one of their group, or"
            " beyond delivery.max_held.",
            ["reason"],
            registry=registry if registry is not None else CollectorRegistry(),
        )
        self._unlogged: Tally[str] = Tally()
        self._next_log = float("-inf")

    def count(self, reason: DropReason, now: float) -> None:
        """One unsent notification dropped."""
        self.dropped.labels(reason.value).inc()
        self._unlogged[reason.value] += 1
        if now >= self._next_log:
            self.flush(now)

    def flush(self, now: float) -> None:
        """Log what was dropped since the last line, if anything."""
        if not self._unlogged:
            return
        _log.warning(
            "notifications held in memory were dropped (the outbox cannot be written)",
            **dict(self._unlogged),
        )
        self._unlogged.clear()
        self._next_log = now + LOG_EVERY
