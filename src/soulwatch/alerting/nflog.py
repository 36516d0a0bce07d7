"""The notification log: what was last notified per integration and alert group.

It is Alertmanager's nflog with one difference: it records alert *episodes*
(``fingerprint@startsAt``), not fingerprints, so the same alert firing again
after it resolved is always news, even if the resolve in between was never
sent. The dispatcher reads an entry before deciding to notify; the outbox
writes the new entry in the same transaction as the notification itself.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from soulwatch.alerting.delivery_db import DeliveryDatabase

SCHEMA = """
CREATE TABLE IF NOT EXISTS nflog (
    integration TEXT NOT NULL,
    group_key TEXT NOT NULL,
    firing TEXT NOT NULL,
    resolved TEXT NOT NULL,
    sent_at REAL NOT NULL,
    PRIMARY KEY (integration, group_key)
);
"""


@dataclass(frozen=True)
class LogEntry:
    """What was last notified for one integration and alert group: the episodes
    reported firing and resolved, and when."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


@dataclass(frozen=True)
class LogUpdate:
    """A new entry to record (with or without a notification to send)."""

    integration: str
    group_key: str
    firing: frozenset[str]
    resolved: frozenset[str]


class NotificationLog:
    """Reads and writes the ``nflog`` table of the delivery database."""

    def __init__(self, db: DeliveryDatabase) -> None:
        self._db = db

    def entry(self, integration: str, group_key: str) -> LogEntry | None:
        """The last entry for an integration and group, if any."""
        rows = self._db.read(
            "SELECT firing, resolved, sent_at FROM nflog WHERE integration=? AND group_key=?",
            (integration, group_key),
        )
        if not rows:
            return None
        firing, resolved, sent_at = rows[0]
        return LogEntry(
            frozenset(json.loads(str(firing))),
            frozenset(json.loads(str(resolved))),
            float(sent_at),
        )

    @staticmethod
    def write(conn: sqlite3.Connection, update: LogUpdate, now: float) -> None:
        """Record ``update`` inside the caller's transaction."""
        conn.execute(
            "INSERT OR REPLACE INTO nflog VALUES (?,?,?,?,?)",
            (
                update.integration,
                update.group_key,
                json.dumps(sorted(update.firing)),
                json.dumps(sorted(update.resolved)),
                now,
            ),
        )
