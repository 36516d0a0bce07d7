"""Acknowledgements: "someone is on it", per alert group, durable.

Acknowledging a group stops its *repeat* notifications (``repeat_interval``)
until the episode it acknowledged is over: an alert of the group that starts
after the acknowledgement (a new alert, or the same one firing again after it
resolved) makes the group notify as usual, and resolved notifications are
always sent. Who acknowledged and when is kept, for the console and the
alert's history.

Acknowledgements live in the silences' SQLite database (table ``acks``), and
in memory, so the dispatcher's check costs no query.
"""

from __future__ import annotations

import builtins
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from soulwatch.alerting.message import group_id
from soulwatch.alerting.store_writes import StoreWrites
from soulwatch.clock import Clock
from soulwatch.exceptions import StorageError

#: Longest "who" and comment kept.
MAX_TEXT = 500


@dataclass(frozen=True)
class Ack:
    """One acknowledgement of one alert group."""

    group_key: str
    by: str
    comment: str
    at: float

    @property
    def group_id(self) -> str:
        """The group's id, as notifications and the console name it."""
        return group_id(self.group_key)


class AckStore:
    """Acknowledgements by group key; thread-safe (the API writes, the dispatcher reads)."""

    def __init__(self, path: str | Path, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            # Every acknowledgement is kept (History shows time to acknowledge);
            # the newest of a group is the one in force.
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS acks (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                " group_key TEXT NOT NULL, by TEXT NOT NULL, comment TEXT NOT NULL,"
                " at REAL NOT NULL)"
            )
            rows = self._db.execute(
                "SELECT group_key, by, comment, at FROM acks ORDER BY id"
            ).fetchall()
            self._writes = StoreWrites("acknowledgements", self._db, self._lock, Path(path))
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open acknowledgements in {path}: {exc}") from exc
        self._acks = {str(r[0]): Ack(str(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows}

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    @property
    def last_error(self) -> str | None:
        """Why the last write failed (a full disk), ``None`` once one works again."""
        return self._writes.last_error

    def recheck(self) -> None:
        """While writes fail, find out whether they work again (see :mod:`.store_writes`)."""
        self._writes.recheck(self._clock.time())

    def acknowledge(self, group_key: str, by: str, comment: str = "") -> Ack:
        """Record that ``by`` acknowledged the group now (replacing an older acknowledgement);
        ``StorageError`` (naming the cause) when it cannot be written."""
        if not by.strip():
            raise ValueError("an acknowledgement needs a name (who is on it)")
        ack = Ack(group_key, by.strip()[:MAX_TEXT], comment.strip()[:MAX_TEXT], self._clock.time())
        with self._lock:
            with self._writes.writing("record the acknowledgement") as db:
                db.execute(
                    "INSERT INTO acks (group_key, by, comment, at) VALUES (?,?,?,?)",
                    (ack.group_key, ack.by, ack.comment, ack.at),
                )
            self._acks[group_key] = ack
        return ack

    def merge(self, acks: Iterable[Ack]) -> int:
        """Take acknowledgements a peer recorded, where newer than ours; returns how many."""
        taken = 0
        with self._lock:
            for ack in acks:
                mine = self._acks.get(ack.group_key)
                if mine is not None and mine.at >= ack.at:
                    continue
                try:
                    self._db.execute(
                        "INSERT INTO acks (group_key, by, comment, at) VALUES (?,?,?,?)",
                        (ack.group_key, ack.by, ack.comment, ack.at),
                    )
                except sqlite3.Error as exc:
                    raise StorageError(f"cannot record the acknowledgement: {exc}") from exc
                self._acks[ack.group_key] = ack
                taken += 1
        return taken

    def get(self, group_key: str) -> Ack | None:
        """The group's acknowledgement, if any."""
        with self._lock:
            return self._acks.get(group_key)

    def list(self) -> list[Ack]:
        """The acknowledgement in force of every group, newest first."""
        with self._lock:
            return sorted(self._acks.values(), key=lambda a: a.at, reverse=True)

    def history(self, since: float, limit: int = 10_000) -> builtins.list[Ack]:
        """Every acknowledgement since ``since``, oldest first."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT group_key, by, comment, at FROM acks WHERE at >= ? ORDER BY id LIMIT ?",
                    (since, limit),
                ).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read acknowledgements: {exc}") from exc
        return [Ack(str(r[0]), str(r[1]), str(r[2]), float(r[3])) for r in rows]

    def holds_repeat(self, group_key: str, firing_since: Iterable[float]) -> bool:
        """Whether repeats of this group are held: acknowledged after every firing alert started."""
        ack = self.get(group_key)
        if ack is None:
            return False
        starts = list(firing_since)
        return bool(starts) and max(starts) <= ack.at
