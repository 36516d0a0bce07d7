"""SQLite persistence of heartbeat checks, their pings and status changes."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from soulwatch.sources.heartbeats.model import Check, CheckStatus, Flip, Ping, PingKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, slug TEXT NOT NULL, period REAL,
    schedule TEXT, tz TEXT NOT NULL, grace REAL NOT NULL, description TEXT NOT NULL,
    source TEXT NOT NULL, status TEXT NOT NULL, created REAL NOT NULL, last_ping REAL,
    last_start REAL, last_start_rid TEXT, last_duration REAL, last_by_kind TEXT NOT NULL,
    n_pings INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pings (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, t REAL NOT NULL, kind TEXT NOT NULL,
    rid TEXT, exit_status INTEGER, method TEXT NOT NULL, remote_addr TEXT NOT NULL,
    user_agent TEXT NOT NULL, body BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS pings_by_check ON pings (uuid, id);
CREATE TABLE IF NOT EXISTS flips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, uuid TEXT NOT NULL, t REAL NOT NULL,
    old TEXT NOT NULL, new TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS flips_by_check ON flips (uuid, id);
"""

_COLUMNS = (
    "uuid, name, slug, period, schedule, tz, grace, description, source, status, created, "
    "last_ping, last_start, last_start_rid, last_duration, last_by_kind, n_pings"
)


class HeartbeatStore:
    """SQLite persistence of checks, pings and flips (one file in the data dir).

    Calls block; the service runs them off the event loop. One connection is
    shared under a lock, so calls from worker threads are serialised.

    A ping's commit never copies the write-ahead log into the database
    (SQLite's automatic checkpoint, which syncs the file to disk and on a busy
    disk took seconds, every few hundred pings): :meth:`checkpoint` does it,
    on a connection of its own, from the monitor's periodic work. A committed
    ping is in the log, as durable as before.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._db.executescript(_SCHEMA)
        self.lock = threading.RLock()
        self._checkpointer = sqlite3.connect(
            str(self.path), check_same_thread=False, isolation_level=None
        )
        self._checkpoint_lock = threading.Lock()

    def close(self) -> None:
        """Close the database (what the log holds is copied in at the last close)."""
        with self._checkpoint_lock:
            self._checkpointer.close()
        with self.lock:
            self._db.close()

    def checkpoint(self) -> int:
        """Copy the write-ahead log into the database; the log's length in pages.

        Pings go on meanwhile: a passive checkpoint waits for no writer and
        no writer waits for it (it never takes :attr:`lock`). Once all of it
        is copied, the next ping's commit starts the log afresh.
        """
        with self._checkpoint_lock:
            row = self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return max(0, int(row[1]))

    def load(self) -> list[Check]:
        """Every stored check."""
        with self.lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM checks ORDER BY name").fetchall()
        return [_row_to_check(r) for r in rows]

    def save(self, check: Check) -> None:
        """Insert or update a check."""
        values = (
            check.uuid, check.name, check.slug, check.period, check.schedule, check.tz,
            check.grace, check.description, check.source, check.status.value, check.created,
            check.last_ping, check.last_start, check.last_start_rid, check.last_duration,
            json.dumps(check.last_by_kind), check.n_pings,
        )  # fmt: skip
        with self.lock:
            self._db.execute(
                f"INSERT OR REPLACE INTO checks ({_COLUMNS}) VALUES ({','.join('?' * 17)})", values
            )

    def delete(self, check_uuid: str) -> None:
        """Remove a check with its pings and flips."""
        with self.lock:
            self._db.execute("BEGIN")
            for table in ("checks", "pings", "flips"):
                self._db.execute(f"DELETE FROM {table} WHERE uuid = ?", (check_uuid,))
            self._db.execute("COMMIT")

    def record_ping(self, check: Check, ping: Ping, keep: int, flip: Flip | None) -> None:
        """Store the check's new state, the ping (trimming old ones) and a flip, atomically."""
        with self.lock:
            self._db.execute("BEGIN")
            try:
                self.save(check)
                self._db.execute(
                    "INSERT INTO pings (uuid, t, kind, rid, exit_status, method, remote_addr,"
                    " user_agent, body) VALUES (?,?,?,?,?,?,?,?,?)",
                    (check.uuid, ping.t, ping.kind.value, ping.rid, ping.exit_status, ping.method,
                     ping.remote_addr, ping.user_agent, ping.body),
                )  # fmt: skip
                self._db.execute(
                    "DELETE FROM pings WHERE uuid = ? AND id <= (SELECT id FROM pings"
                    " WHERE uuid = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
                    (check.uuid, check.uuid, keep),
                )
                if flip is not None:
                    self._insert_flip(check.uuid, flip)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def record_flip(self, check: Check, flip: Flip) -> None:
        """Store a status change found by evaluation, with the check's new state."""
        with self.lock:
            self._db.execute("BEGIN")
            self.save(check)
            self._insert_flip(check.uuid, flip)
            self._db.execute("COMMIT")

    def _insert_flip(self, check_uuid: str, flip: Flip) -> None:
        self._db.execute(
            "INSERT INTO flips (uuid, t, old, new) VALUES (?,?,?,?)",
            (check_uuid, flip.t, flip.old.value, flip.new.value),
        )

    def pings(self, check_uuid: str, limit: int = 100) -> list[Ping]:
        """The most recent pings of a check, newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT t, kind, rid, exit_status, method, remote_addr, user_agent, body FROM pings"
                " WHERE uuid = ? ORDER BY id DESC LIMIT ?",
                (check_uuid, limit),
            ).fetchall()
        return [Ping(r[0], PingKind(r[1]), r[2], r[3], r[4], r[5], r[6], bytes(r[7])) for r in rows]

    def flips(self, check_uuid: str, limit: int = 100) -> list[Flip]:
        """The most recent status changes of a check, newest first."""
        with self.lock:
            rows = self._db.execute(
                "SELECT t, old, new FROM flips WHERE uuid = ? ORDER BY id DESC LIMIT ?",
                (check_uuid, limit),
            ).fetchall()
        return [Flip(r[0], CheckStatus(r[1]), CheckStatus(r[2])) for r in rows]


def _row_to_check(r: Sequence[Any]) -> Check:
    return Check(
        uuid=r[0], name=r[1], slug=r[2], period=r[3], schedule=r[4], tz=r[5], grace=r[6],
        description=r[7], source=r[8], status=CheckStatus(r[9]), created=r[10], last_ping=r[11],
        last_start=r[12], last_start_rid=r[13], last_duration=r[14],
        last_by_kind=json.loads(r[15]), n_pings=r[16],
    )  # fmt: skip
