"""The durable outbox: every notification is written to SQLite before it is sent.

Delivery is at-least-once. A row is inserted (together with the notification
log entry that decided to send it, in one transaction) before any network
call, and marked delivered only after the receiver accepted it; a crash at
any point leaves the row pending, and the next start sends it again with the
same idempotency key. Within one lane (integration × alert group) rows go out
strictly in order: a row waiting for a retry holds back the rows behind it.

Retries back off exponentially with jitter, honour ``Retry-After``, and give
up at the configured deadline. Each notifier says whether its error is
permanent (see its ``raise_for_response``); a permanent one fails the row at
once and records the integration's last error, and the
:class:`DeliveryListener` given at construction raises the
``NotificationFailing`` meta-alert. Any other exception a notifier raises is
a transient error of that row: recorded as its ``last_error`` and retried
with the same backoff, never in a tight loop.

The outbox shares its SQLite file (:class:`DeliveryDatabase`) with the
notification log (:mod:`soulwatch.alerting.nflog`) and the GitHub issue index
(:mod:`soulwatch.alerting.issue_index`).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from soulwatch.alerting import issue_index, nflog
from soulwatch.alerting.config import DeliveryConfig
from soulwatch.alerting.delivery_db import DeliveryDatabase
from soulwatch.alerting.message import Notification
from soulwatch.alerting.nflog import LogEntry, LogUpdate
from soulwatch.alerting.notifiers import Notifier
from soulwatch.clock import Clock
from soulwatch.exceptions import DeliveryError, StorageError

_SCHEMA = """
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


class Outcome(Enum):
    """The ``outcome`` label of ``soulwatch_notifications_total``."""

    SUCCESS = "success"
    RETRY = "retry"
    FAILED = "failed"
    EXPIRED = "expired"


@dataclass(frozen=True)
class OutboxRow:
    """One stored notification."""

    id: int
    integration: str
    state: RowState
    attempts: int
    idempotency_key: str
    notification: Notification
    last_error: str | None
    created_at: float = 0.0
    delivered_at: float | None = None


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


_DB_RETRY = 5.0

#: One notification to store (``None``: only record the log entry) and its log entry.
EnqueueItem = tuple[Notification | None, LogUpdate]


class DeliveryListener(Protocol):
    """Told when an integration starts failing for good, and when it recovers."""

    async def delivery_failed(
        self, integration: str, receiver: str, error: str, permanent: bool
    ) -> None:
        """A notification failed permanently or expired."""
        ...

    async def delivery_recovered(self, integration: str, receiver: str) -> None:
        """An integration that was failing accepted a notification again."""
        ...


class ForwardingListener:
    """A :class:`DeliveryListener` that forwards to whatever ``current()`` returns
    at the time of the event: the owner's current dispatcher, which a reload
    replaces while the outbox lives on."""

    def __init__(self, current: Callable[[], DeliveryListener | None]) -> None:
        self._current = current

    async def delivery_failed(
        self, integration: str, receiver: str, error: str, permanent: bool
    ) -> None:
        """Forward :meth:`DeliveryListener.delivery_failed`."""
        target = self._current()
        if target is not None:
            await target.delivery_failed(integration, receiver, error, permanent)

    async def delivery_recovered(self, integration: str, receiver: str) -> None:
        """Forward :meth:`DeliveryListener.delivery_recovered`."""
        target = self._current()
        if target is not None:
            await target.delivery_recovered(integration, receiver)


class Outbox:
    """The SQLite outbox and the loop that delivers from it."""

    def __init__(
        self,
        path: str | Path,
        *,
        clock: Clock,
        notifiers: Mapping[str, Notifier] | None = None,
        listener: DeliveryListener | None = None,
        settings: DeliveryConfig | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = 16,
    ) -> None:
        self._clock = clock
        self._notifiers: dict[str, Notifier] = dict(notifiers or {})
        self._listener = listener
        self._settings = settings or DeliveryConfig()
        self._rng = rng or random.Random()
        self._db = DeliveryDatabase(path, _SCHEMA + nflog.SCHEMA + issue_index.SCHEMA)
        #: The notification log, in the same database (written with each notification).
        self.log = nflog.NotificationLog(self._db)
        #: The GitHub issue index, in the same database.
        self.issues = issue_index.GitHubIssueIndex(self._db)
        self.metrics = DeliveryMetrics(registry)
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._max_in_flight = max_in_flight

    @property
    def notifiers(self) -> dict[str, Notifier]:
        """The notifiers by integration id (a copy)."""
        return dict(self._notifiers)

    def use_notifiers(self, notifiers: Mapping[str, Notifier]) -> None:
        """Send with these from now on (a reload changed the receivers); rows of an
        integration that no longer exists fail permanently when their turn comes."""
        self._notifiers = dict(notifiers)
        self._wake.set()

    @property
    def last_error(self) -> str | None:
        """The last error of the outbox database itself, ``None`` once a write works again."""
        return self._db.last_error

    def close(self) -> None:
        """Close the database (call after :meth:`run` has stopped)."""
        self._db.close()

    # --- writing -----------------------------------------------------------------

    def log_entry(self, integration: str, group_key: str) -> LogEntry | None:
        """The last notification-log entry for an integration and group."""
        return self.log.entry(integration, group_key)

    def enqueue(self, items: Sequence[EnqueueItem]) -> None:
        """Store notifications and their log entries in one transaction.

        Each item is ``(notification or None, log update)``; ``None`` records
        the log entry without sending (e.g. resolved-only with
        ``send_resolved: false``). Raises :class:`StorageError` when the
        database cannot be written; then nothing was recorded.
        """
        now = self._clock.time()
        with self._db.transaction("write to the outbox") as conn:
            for n, update in items:
                nflog.NotificationLog.write(conn, update, now)
                if n is not None:
                    _insert_row(conn, n, update.group_key, now)
        self._wake.set()

    # --- reading -----------------------------------------------------------------

    def rows(self, state: RowState | None = None) -> list[OutboxRow]:
        """Stored rows, oldest first (for the UI, the CLI and tests)."""
        query = (
            "SELECT id, integration, state, attempts, idempotency_key, payload, last_error,"
            " created_at, delivered_at FROM outbox"
        )
        args: tuple[str, ...] = ()
        if state is not None:
            query += " WHERE state=?"
            args = (state.value,)
        rows = self._db.read(query + " ORDER BY id", args)
        return [
            OutboxRow(
                int(r[0]),
                str(r[1]),
                RowState(r[2]),
                int(r[3]),
                str(r[4]),
                Notification.from_json(str(r[5])),
                r[6],
                float(r[7]),
                None if r[8] is None else float(r[8]),
            )
            for r in rows
        ]

    def pending_count(self) -> int:
        """How many notifications wait to be delivered."""
        rows = self._db.read("SELECT COUNT(*) FROM outbox WHERE state='pending'")
        return int(rows[0][0])

    def integration_errors(self) -> dict[str, tuple[str, float, bool]]:
        """``integration -> (last error, when, failing now)``."""
        rows = self._db.read("SELECT integration, last_error, at, failing FROM integration_errors")
        return {str(r[0]): (str(r[1]), float(r[2]), bool(r[3])) for r in rows}

    # --- delivering --------------------------------------------------------------

    def prune(self) -> int:
        """Delete finished rows older than the retention; returns how many."""
        cutoff = self._clock.time() - self._settings.retention
        with self._db.transaction("prune the outbox") as conn:
            cur = conn.execute(
                "DELETE FROM outbox WHERE state != 'pending' AND created_at < ?", (cutoff,)
            )
        return int(cur.rowcount)

    async def run(self) -> None:
        """Deliver forever (cancel to stop); resumes whatever a previous process left pending."""
        last_prune = float("-inf")
        try:
            while True:
                self._wake.clear()
                try:
                    if self._clock.time() - last_prune >= 3600:
                        self.prune()
                        last_prune = self._clock.time()
                    next_due = self._launch_due()
                except StorageError:
                    # The database is unavailable (disk full, locked): the error
                    # is kept for the health check; try again shortly, nothing is lost.
                    await self._clock.sleep(_DB_RETRY)
                    continue
                now = self._clock.time()
                timeout = None if next_due is None else max(0.0, next_due - now)
                await self._wait(timeout)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def drain(self, *, max_rounds: int = 10_000) -> None:
        """Deliver everything due now and wait for it (for tests and shutdown)."""
        for _ in range(max_rounds):
            self._launch_due()
            if not self._tasks:
                return
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _wait(self, timeout: float | None) -> None:
        waiter = asyncio.ensure_future(self._wake.wait())
        sleeper = asyncio.ensure_future(self._clock.sleep(timeout)) if timeout is not None else None
        pending = {waiter} | ({sleeper} if sleeper else set())
        try:
            await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in pending:
                fut.cancel()

    def _launch_due(self) -> float | None:
        """Start sending the due head of every idle lane; return the earliest future due time."""
        now = self._clock.time()
        heads = self._db.read(
            "SELECT id, integration, group_key, next_attempt_at FROM outbox o"
            " WHERE state='pending'"
            " AND id = (SELECT MIN(id) FROM outbox p WHERE p.state='pending'"
            " AND p.integration=o.integration AND p.group_key=o.group_key) ORDER BY id"
        )
        next_due: float | None = None
        for row_id, integration, group_key, due in heads:
            lane = (str(integration), str(group_key))
            if lane in self._in_flight:
                continue
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            if len(self._in_flight) >= self._max_in_flight:
                break
            self._in_flight.add(lane)
            task = asyncio.get_running_loop().create_task(self._deliver(int(row_id), lane))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return next_due

    async def _deliver(self, row_id: int, lane: tuple[str, str]) -> None:
        try:
            await self._deliver_row(row_id)
        except StorageError:
            # The row stays pending and is sent again: at-least-once, never lost
            # (the error is kept for the health check).
            pass
        finally:
            self._in_flight.discard(lane)
            self._wake.set()

    async def _deliver_row(self, row_id: int) -> None:
        [row] = self._db.read(
            "SELECT integration, receiver, payload, created_at, event_at, attempts"
            " FROM outbox WHERE id=?",
            (row_id,),
        )
        integration, receiver, payload, created_at, event_at, attempts = row
        notification = Notification.from_json(payload)
        notifier = self._notifiers.get(integration)
        try:
            if notifier is None:
                raise DeliveryError(
                    f"integration {integration} is no longer configured", permanent=True
                )
            await notifier.notify(notification)
        except DeliveryError as exc:
            await self._failed(row_id, integration, receiver, created_at, attempts, exc)
            return
        except Exception as exc:
            # A notifier's own bug or an error it does not classify: the row's
            # error, retried with backoff like a transient failure (the loop
            # must not spin on it, nor lose the notification).
            error = DeliveryError(f"{integration}: {type(exc).__name__}: {exc}", permanent=False)
            await self._failed(row_id, integration, receiver, created_at, attempts, error)
            return
        now = self._clock.time()
        with self._db.transaction("mark a notification delivered") as conn:
            conn.execute(
                "UPDATE outbox SET state=?, delivered_at=?, attempts=attempts+1 WHERE id=?",
                (RowState.DELIVERED.value, now, row_id),
            )
            was_failing = conn.execute(
                "SELECT failing FROM integration_errors WHERE integration=?", (integration,)
            ).fetchone()
            if was_failing and was_failing[0]:
                conn.execute(
                    "UPDATE integration_errors SET failing=0 WHERE integration=?", (integration,)
                )
        self.metrics.notifications.labels(receiver, Outcome.SUCCESS.value).inc()
        self.metrics.latency.labels(receiver).observe(max(0.0, now - float(event_at)))
        if was_failing and was_failing[0] and self._listener is not None:
            await self._listener.delivery_recovered(integration, receiver)

    async def _failed(  # noqa: PLR0917
        self,
        row_id: int,
        integration: str,
        receiver: str,
        created_at: float,
        attempts: int,
        exc: DeliveryError,
    ) -> None:
        now = self._clock.time()
        s = self._settings
        delay = min(s.max_backoff, s.initial_backoff * 2**attempts)
        delay = delay * (0.5 + self._rng.random() / 2)  # "equal jitter": half fixed, half random
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        expired = not exc.permanent and now + delay > created_at + s.deadline
        if exc.permanent or expired:
            state, outcome = (
                (RowState.FAILED, Outcome.FAILED)
                if exc.permanent
                else (RowState.EXPIRED, Outcome.EXPIRED)
            )
            with self._db.transaction("record a failed notification") as conn:
                conn.execute(
                    "UPDATE outbox SET state=?, attempts=attempts+1, last_error=? WHERE id=?",
                    (state.value, str(exc), row_id),
                )
                conn.execute(
                    "INSERT OR REPLACE INTO integration_errors VALUES (?,?,?,1)",
                    (integration, str(exc), now),
                )
            self.metrics.notifications.labels(receiver, outcome.value).inc()
            if self._listener is not None:
                await self._listener.delivery_failed(integration, receiver, str(exc), exc.permanent)
            return
        with self._db.transaction("record a retry") as conn:
            conn.execute(
                "UPDATE outbox SET attempts=attempts+1, next_attempt_at=?, last_error=? WHERE id=?",
                (now + delay, str(exc), row_id),
            )
        self.metrics.notifications.labels(receiver, Outcome.RETRY.value).inc()


def _insert_row(conn: sqlite3.Connection, n: Notification, group_key: str, now: float) -> None:
    conn.execute(
        "INSERT INTO outbox (integration, receiver, group_key, idempotency_key, payload,"
        " created_at, event_at, state, next_attempt_at) VALUES (?,?,?,?,?,?,?,?,?)",
        (
            n.integration,
            n.receiver,
            group_key,
            n.idempotency_key,
            n.to_json(),
            now,
            n.event_time,
            RowState.PENDING.value,
            now,
        ),
    )
