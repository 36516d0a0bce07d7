"""Outbox rows: their states, how they are stored, and the metrics of their delivery.

The outbox keeps every pending row in memory (:class:`PendingRow`) and the
database as its durable copy. A row whose last change could not be written
(the disk is full) is *dirty*; the outbox writes it again once it can.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from enum import Enum

from prometheus_client import CollectorRegistry, Counter, Histogram

from soulwatch.alerting.delivery_db import DeliveryDatabase
from soulwatch.alerting.message import Notification

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    integration TEXT NOT NULL,
    receiver TEXT NOT NULL,
    group_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at REAL NOT NULL,
    event_at REAL NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(state, integration, group_key, id);
CREATE TABLE IF NOT EXISTS integration_errors (
    integration TEXT PRIMARY KEY,
    last_error TEXT NOT NULL,
    at REAL NOT NULL,
    failing INTEGER NOT NULL
);
"""


class RowState(Enum):
    """The life of an outbox row."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # permanent error
    EXPIRED = "expired"  # retried until the deadline
    SENT_BY_PEER = "sent_by_peer"  # another instance of an HA pair sent it


class Outcome(Enum):
    """The ``outcome`` label of ``soulwatch_notifications_total``."""

    SUCCESS = "success"
    RETRY = "retry"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OutboxRow:
    """One notification of the outbox, as the API, the CLI and tests see it.

    ``id`` is negative for a row only held in memory (it could not be
    written yet).
    """

    id: int
    integration: str
    state: RowState
    attempts: int
    idempotency_key: str
    notification: Notification
    last_error: str | None
    created_at: float = 0.0
    delivered_at: float | None = None


@dataclass
class PendingRow:
    """The outbox's working copy of one row."""

    seq: int  # enqueue order: lanes go out in this order
    id: int | None  # the database id; None while only in memory
    notification: Notification
    created_at: float
    next_attempt_at: float
    attempts: int = 0
    last_error: str | None = None
    state: RowState = RowState.PENDING
    delivered_at: float | None = None
    dirty: bool = False

    @property
    def integration(self) -> str:
        """The integration id."""
        return self.notification.integration

    @property
    def lane(self) -> tuple[str, str]:
        """Integration and alert group: rows of one lane go out in order."""
        return (self.notification.integration, self.notification.group_key)

    def view(self) -> OutboxRow:
        """The public view."""
        return OutboxRow(
            self.id if self.id is not None else -self.seq,
            self.integration,
            self.state,
            self.attempts,
            self.notification.idempotency_key,
            self.notification,
            self.last_error,
            self.created_at,
            self.delivered_at,
        )


def insert(conn: sqlite3.Connection, row: PendingRow) -> int:
    """Insert ``row`` inside the caller's transaction; returns its id."""
    n = row.notification
    cur = conn.execute(
        "INSERT INTO outbox (integration, receiver, group_key, idempotency_key, payload,"
        " created_at, event_at, state, attempts, next_attempt_at, last_error, delivered_at)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            n.integration,
            n.receiver,
            n.group_key,
            n.idempotency_key,
            n.to_json(),
            row.created_at,
            n.event_time,
            row.state.value,
            row.attempts,
            row.next_attempt_at,
            row.last_error,
            row.delivered_at,
        ),
    )
    assert cur.lastrowid is not None
    return cur.lastrowid


def update(conn: sqlite3.Connection, row: PendingRow) -> None:
    """Write ``row``'s delivery state inside the caller's transaction."""
    conn.execute(
        "UPDATE outbox SET state=?, attempts=?, next_attempt_at=?, last_error=?, delivered_at=?"
        " WHERE id=?",
        (
            row.state.value,
            row.attempts,
            row.next_attempt_at,
            row.last_error,
            row.delivered_at,
            row.id,
        ),
    )


def load_pending(db: DeliveryDatabase) -> list[PendingRow]:
    """Every pending row of the database, oldest first (what a previous process left)."""
    rows = db.read(
        "SELECT id, payload, created_at, next_attempt_at, attempts, last_error FROM outbox"
        " WHERE state='pending' ORDER BY id"
    )
    return [
        PendingRow(
            seq=int(row_id),
            id=int(row_id),
            notification=Notification.from_json(str(payload)),
            created_at=float(created),
            next_attempt_at=float(due),
            attempts=int(attempts),
            last_error=last_error,
        )
        for row_id, payload, created, due, attempts, last_error in rows
    ]


class DeliveryMetrics:
    """The delivery metrics, registered in an injected registry."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.notifications = Counter(
            "soulwatch_notifications",
            "Notification delivery attempts by receiver and outcome.",
            ["receiver", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "soulwatch_notification_latency_seconds",
            "Seconds from an alert's state change to the receiver accepting the notification.",
            ["receiver"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
            registry=registry,
        )
