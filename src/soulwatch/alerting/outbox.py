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

When that file cannot be written (a full disk), alerting goes on from
memory: the notification and its log entry are kept in memory and sent at
once, marked as such (the ``soulwatch_store_failing`` annotation and a note
say which store fails), and everything held in memory is written as soon as
the database accepts writes again. What memory holds is bounded (see
:mod:`soulwatch.alerting.outbox_memory`: a later notification of a group
supersedes an earlier one, and past ``delivery.max_held`` the oldest are
dropped, firing pages last). A crash while the disk is full loses what
only memory held; every other guarantee stands. The same mark goes on every
notification while any store the ``store_failures`` callable names is failing.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from enum import Enum
from pathlib import Path
from typing import Protocol

from prometheus_client import CollectorRegistry

from soulwatch.alerting import issue_index, nflog
from soulwatch.alerting import outbox_memory as memory
from soulwatch.alerting import outbox_rows as rows_
from soulwatch.alerting.config import DeliveryConfig
from soulwatch.alerting.delivery_db import DeliveryDatabase
from soulwatch.alerting.message import Notification
from soulwatch.alerting.nflog import LogEntry, LogUpdate
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.outbox_rows import (
    DeliveryMetrics,
    OutboxRow,
    Outcome,
    PendingRow,
    RowState,
)
from soulwatch.clock import Clock
from soulwatch.exceptions import DeliveryError, StorageError

__all__ = [
    "STORE_ANNOTATION",
    "DeliveryGate",
    "DeliveryListener",
    "DeliveryMetrics",
    "EnqueueItem",
    "ForwardingListener",
    "Outbox",
    "OutboxRow",
    "RowState",
    "SendDecision",
]

_log = logging.getLogger("soulwatch.alerting")

_DB_RETRY = 5.0
#: How often a notification held by a standby is looked at again.
HOLD_RECHECK = 0.5
_PRUNE_EVERY = 3600.0

#: The annotation that tells a receiver soulwatch's own storage is failing.
STORE_ANNOTATION = "soulwatch_store_failing"

#: One notification to store (``None``: only record the log entry) and its log entry.
EnqueueItem = tuple[Notification | None, LogUpdate]

#: Which stores fail now and why (``{}`` when all is well).
StoreFailures = Callable[[], Mapping[str, str]]


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


class SendDecision(Enum):
    """What a :class:`DeliveryGate` says about a notification about to be sent."""

    SEND = "send"
    HOLD = "hold"  # not now: this instance is a standby
    SKIP = "skip"  # never: another instance already sent it


class DeliveryGate(Protocol):
    """Decides, right before each send, whether this instance sends (an HA pair's lease)."""

    async def before_send(self, n: Notification, queued_at: float) -> tuple[SendDecision, str]:
        """Send, hold or skip ``n`` (queued at ``queued_at``), and why when skipped."""
        ...

    async def delivered(self, n: Notification, at: float) -> None:
        """``n`` was accepted by its receiver at ``at``."""
        ...

    def merged(
        self,
        integration: str,
        group_key: str,
        local: LogEntry | None,
        episodes: Sequence[tuple[str, bool]],
    ) -> LogEntry | None:
        """The log entry ``local`` with what other instances sent of ``episodes``
        (``(episode, resolved)`` pairs)."""
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
        store_failures: StoreFailures | None = None,
        settings: DeliveryConfig | None = None,
        registry: CollectorRegistry | None = None,
        rng: random.Random | None = None,
        max_in_flight: int = 16,
        gate: DeliveryGate | None = None,
    ) -> None:
        self._clock = clock
        self._gate = gate
        self._notifiers: dict[str, Notifier] = dict(notifiers or {})
        self._listener = listener
        self._store_failures = store_failures
        self._settings = settings or DeliveryConfig()
        self._rng = rng or random.Random()
        self._db = DeliveryDatabase(path, rows_.SCHEMA + nflog.SCHEMA + issue_index.SCHEMA)
        #: The notification log, in the same database (written with each notification).
        self.log = nflog.NotificationLog(self._db)
        #: The GitHub issue index, in the same database.
        self.issues = issue_index.GitHubIssueIndex(self._db)
        self.metrics = DeliveryMetrics(registry)
        self._drops = memory.DropLog(registry)
        # Every pending row (and finished ones not yet written), in enqueue order.
        self._rows: dict[int, PendingRow] = {r.seq: r for r in rows_.load_pending(self._db)}
        [(max_id,)] = self._db.read("SELECT COALESCE(MAX(id), 0) FROM outbox")
        self._seq = itertools.count(int(max_id) + 1)
        # Log entries recorded while the database could not be written.
        self._held_log: dict[tuple[str, str], tuple[LogUpdate, float]] = {}
        self._failing = {
            str(r[0])
            for r in self._db.read("SELECT integration FROM integration_errors WHERE failing=1")
        }
        self._wake = asyncio.Event()
        self._in_flight: set[tuple[str, str]] = set()
        self._sending: set[int] = set()  # seqs of the rows being sent now
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
        """The last error writing the outbox database, ``None`` once a write works again."""
        return self._db.last_error

    @property
    def held_in_memory(self) -> int:
        """How many notifications and log entries wait to be written to the database."""
        return len(self._held_log) + sum(1 for r in self._rows.values() if r.dirty)

    def close(self) -> None:
        """Write what memory still holds if possible, then close (after :meth:`run`)."""
        self._catch_up()
        self._db.close()

    # --- writing -----------------------------------------------------------------

    def log_entry(
        self, integration: str, group_key: str, episodes: Sequence[tuple[str, bool]] = ()
    ) -> LogEntry | None:
        """The last notification-log entry for an integration and group.

        With a gate (an HA pair), what other instances sent of ``episodes``
        (``(episode, resolved)`` pairs) counts as sent here too.
        """
        held = self._held_log.get((integration, group_key))
        if held is not None:
            update, at = held
            entry: LogEntry | None = LogEntry(update.firing, update.resolved, at)
        else:
            entry = self.log.entry(integration, group_key)
        if self._gate is not None:
            entry = self._gate.merged(integration, group_key, entry, episodes)
        return entry

    def release_held(self) -> None:
        """Look at every held notification now (this instance just started notifying)."""
        now = self._clock.time()
        for row in self._rows.values():
            if row.state is RowState.PENDING and row.attempts == 0:
                row.next_attempt_at = min(row.next_attempt_at, now)
        self._wake.set()

    def enqueue(self, items: Sequence[EnqueueItem]) -> None:
        """Store notifications and their log entries in one transaction.

        Each item is ``(notification or None, log update)``; ``None`` records
        the log entry without sending (e.g. resolved-only with
        ``send_resolved: false``). When the database cannot be written, the
        items are held in memory, sent from there and written later (see the
        module docstring); this never raises for that.
        """
        now = self._clock.time()
        failures = dict(self._store_failures()) if self._store_failures is not None else {}
        if self._catch_up():
            try:
                self._write(items, failures, now)
                return
            except StorageError:
                pass
        failures["outbox"] = self._db.last_error or "cannot write the outbox"
        for n, update in items:
            self._held_log[(update.integration, update.group_key)] = (update, now)
            if n is not None:
                row = PendingRow(next(self._seq), None, _marked(n, failures), now, now, dirty=True)
                for old in memory.superseded(self._rows.values(), row, self._sending):
                    self._drop(old, memory.DropReason.SUPERSEDED, now, forget_log=False)
                self._rows[row.seq] = row
        limit = self._settings.max_held
        for old in memory.overflow(self._rows.values(), limit, self._sending):
            self._drop(old, memory.DropReason.OVERFLOW, now, forget_log=True)
        self._wake.set()

    def _drop(
        self, row: PendingRow, reason: memory.DropReason, now: float, *, forget_log: bool
    ) -> None:
        """Forget a row only held in memory; an unsent one is counted, and with
        ``forget_log`` its group's held log entry goes too, so it is notified again."""
        del self._rows[row.seq]
        if row.state is not RowState.PENDING:
            return
        self._drops.count(reason, now)
        if forget_log and not any(
            r.lane == row.lane and r.state is RowState.PENDING for r in self._rows.values()
        ):
            self._held_log.pop(row.lane, None)

    def _write(self, items: Sequence[EnqueueItem], failures: dict[str, str], now: float) -> None:
        added: list[PendingRow] = []
        with self._db.transaction("write to the outbox") as conn:
            for n, update in items:
                nflog.NotificationLog.write(conn, update, now)
                if n is not None:
                    row = PendingRow(next(self._seq), None, _marked(n, failures), now, now)
                    row.id = rows_.insert(conn, row)
                    added.append(row)
        for row in added:
            self._rows[row.seq] = row
        self._wake.set()

    def _catch_up(self) -> bool:
        """Write what memory holds (log entries, rows, row changes); True when nothing is left."""
        dirty = [r for r in self._rows.values() if r.dirty]
        if not dirty and not self._held_log:
            return True
        ids: dict[int, int] = {}
        try:
            with self._db.transaction("catch up the outbox") as conn:
                for update, at in self._held_log.values():
                    nflog.NotificationLog.write(conn, update, at)
                for row in dirty:
                    if row.id is None:
                        ids[row.seq] = rows_.insert(conn, row)
                    else:
                        rows_.update(conn, row)
        except StorageError:
            return False
        self._drops.flush(self._clock.time())
        self._held_log.clear()
        for row in dirty:
            row.id = ids.get(row.seq, row.id)
            row.dirty = False
            if row.state is not RowState.PENDING:
                del self._rows[row.seq]
        return True

    # --- reading -----------------------------------------------------------------

    def rows(self, state: RowState | None = None) -> list[OutboxRow]:
        """Rows, oldest first, including those only held in memory (for the UI, the
        CLI and tests)."""
        query = (
            "SELECT id, integration, state, attempts, idempotency_key, payload, last_error,"
            " created_at, delivered_at FROM outbox ORDER BY id"
        )
        newer = {r.id: r.view() for r in self._rows.values() if r.dirty and r.id is not None}
        out = [
            newer.get(
                int(r[0]),
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
                ),
            )
            for r in self._db.read(query)
        ]
        out += [r.view() for r in self._rows.values() if r.id is None]
        return [r for r in out if state is None or r.state is state]

    def pending_count(self) -> int:
        """How many notifications wait to be delivered."""
        return sum(1 for r in self._rows.values() if r.state is RowState.PENDING)

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
        next_prune = self._clock.time()
        try:
            while True:
                self._wake.clear()
                now = self._clock.time()
                retry: float | None = None
                if now >= next_prune:
                    try:
                        self.prune()
                        next_prune = now + _PRUNE_EVERY
                    except StorageError:
                        next_prune = now + _DB_RETRY
                if not self._catch_up():
                    retry = now + _DB_RETRY
                next_due = self._launch_due()
                due = [t for t in (next_due, retry) if t is not None]
                timeout = max(0.0, min(due) - self._clock.time()) if due else None
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
        heads: dict[tuple[str, str], PendingRow] = {}
        for row in self._rows.values():
            if row.state is RowState.PENDING:
                heads.setdefault(row.lane, row)
        next_due: float | None = None
        for lane, row in heads.items():
            if lane in self._in_flight:
                continue
            if row.next_attempt_at > now:
                due = row.next_attempt_at
                next_due = due if next_due is None else min(next_due, due)
                continue
            if len(self._in_flight) >= self._max_in_flight:
                break
            self._in_flight.add(lane)
            self._sending.add(row.seq)
            task = asyncio.get_running_loop().create_task(self._deliver(row))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return next_due

    async def _deliver(self, row: PendingRow) -> None:
        try:
            await self._attempt(row)
        finally:
            self._in_flight.discard(row.lane)
            self._sending.discard(row.seq)
            # Only in memory and superseded while it was being sent: now it can go.
            if row.id is None and row.seq in self._rows:
                rows = self._rows.values()
                if memory.superseded(rows, row, self._sending, newer_only=True):
                    now = self._clock.time()
                    self._drop(row, memory.DropReason.SUPERSEDED, now, forget_log=False)
            self._wake.set()

    async def _attempt(self, row: PendingRow) -> None:
        integration = row.integration
        receiver = row.notification.receiver
        notifier = self._notifiers.get(integration)
        try:
            if notifier is None:
                raise DeliveryError(
                    f"integration {integration} is no longer configured", permanent=True
                )
            if self._gate is not None and not await self._gated(row):
                return
            await notifier.notify(row.notification)
        except DeliveryError as exc:
            await self._failed(row, exc)
            return
        except Exception as exc:
            # A notifier's own bug or an error it does not classify: the row's
            # error, retried with backoff like a transient failure (the loop
            # must not spin on it, nor lose the notification).
            error = DeliveryError(f"{integration}: {type(exc).__name__}: {exc}", permanent=False)
            await self._failed(row, error)
            return
        now = self._clock.time()
        if self._gate is not None:
            # First of all: the shorter the time between the receiver accepting and
            # the other instances knowing, the smaller a dying leader's window for a repeat.
            await self._gate.delivered(row.notification, now)
        row.state = RowState.DELIVERED
        row.delivered_at = now
        row.attempts += 1
        recovered = integration in self._failing
        self._failing.discard(integration)
        self._record(row, recovered=recovered)
        self.metrics.notifications.labels(receiver, Outcome.SUCCESS.value).inc()
        self.metrics.latency.labels(receiver).observe(max(0.0, now - row.notification.event_time))
        if recovered and self._listener is not None:
            await self._listener.delivery_recovered(integration, receiver)

    async def _gated(self, row: PendingRow) -> bool:
        """Ask the gate; ``False`` when the row is held or was sent by another instance."""
        assert self._gate is not None
        decision, why = await self._gate.before_send(row.notification, row.created_at)
        now = self._clock.time()
        if decision is SendDecision.SEND:
            return True
        if decision is SendDecision.HOLD:
            if now <= row.created_at + self._settings.deadline:
                row.next_attempt_at = now + HOLD_RECHECK
                return False
            # Held past the delivery deadline: the leader never sent it, and it is too late.
            row.state = RowState.EXPIRED
            row.last_error = "held by a standby instance past the delivery deadline"
        else:
            row.state = RowState.SENT_BY_PEER
            row.last_error = why
            row.delivered_at = now
        _log.info(
            "notification not sent here",
            extra={
                "reason": row.last_error,
                "receiver": row.notification.receiver,
                "integration": row.integration,
                "fingerprints": [a.fingerprint for a in row.notification.alerts],
            },
        )
        self._record(row)
        return False

    async def _failed(self, row: PendingRow, exc: DeliveryError) -> None:
        now = self._clock.time()
        s = self._settings
        delay = min(s.max_backoff, s.initial_backoff * 2**row.attempts)
        delay = delay * (0.5 + self._rng.random() / 2)  # "equal jitter": half fixed, half random
        if exc.retry_after is not None:
            delay = max(delay, exc.retry_after)
        expired = not exc.permanent and now + delay > row.created_at + s.deadline
        row.attempts += 1
        row.last_error = str(exc)
        receiver = row.notification.receiver
        if not (exc.permanent or expired):
            row.next_attempt_at = now + delay
            self._record(row)
            self.metrics.notifications.labels(receiver, Outcome.RETRY.value).inc()
            return
        row.state = RowState.FAILED if exc.permanent else RowState.EXPIRED
        outcome = Outcome.FAILED if exc.permanent else Outcome.EXPIRED
        self._failing.add(row.integration)
        self._record(row, failed_at=now)
        self.metrics.notifications.labels(receiver, outcome.value).inc()
        if self._listener is not None:
            await self._listener.delivery_failed(row.integration, receiver, str(exc), exc.permanent)

    def _record(
        self, row: PendingRow, *, recovered: bool = False, failed_at: float | None = None
    ) -> None:
        """Write a row's new delivery state; if that fails it stays in memory until
        :meth:`_catch_up` can write it (so it is neither lost nor sent twice meanwhile)."""
        if row.id is None:
            row.dirty = True  # inserted, with its state, by the catch-up
            return
        try:
            with self._db.transaction("record a delivery") as conn:
                rows_.update(conn, row)
                if failed_at is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO integration_errors VALUES (?,?,?,1)",
                        (row.integration, row.last_error, failed_at),
                    )
                elif recovered:
                    conn.execute(
                        "UPDATE integration_errors SET failing=0 WHERE integration=?",
                        (row.integration,),
                    )
        except StorageError:
            row.dirty = True
            return
        row.dirty = False
        if row.state is not RowState.PENDING:
            del self._rows[row.seq]


def _marked(n: Notification, failures: Mapping[str, str]) -> Notification:
    """``n`` saying which of soulwatch's stores fail (unchanged when none does)."""
    if not failures:
        return n
    text = "; ".join(f"{store}: {error}" for store, error in sorted(failures.items()))
    alerts = [replace(a, annotations={**a.annotations, STORE_ANNOTATION: text}) for a in n.alerts]
    note = f"soulwatch's own storage is failing ({text}); alerting goes on from memory"
    return replace(n, alerts=alerts, notes=[*n.notes, note])
