"""The delivery database: one SQLite file shared by the outbox, the notification
log and the GitHub issue index.

They share one file because a notification and the log entry that decided to
send it must be written in one transaction: a crash then leaves either both
or neither. Each part owns its tables and its queries; this module only opens
the connection, serialises access to it, and says whether the last write
worked (the health check reads that).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from soulwatch.exceptions import StorageError


class DeliveryDatabase:
    """One SQLite connection (WAL mode) guarded by a lock."""

    def __init__(self, path: str | Path, schema: str) -> None:
        self.path = Path(path)
        #: Held for every statement: the connection is shared by threads and the loop.
        self.lock = threading.Lock()
        #: The error of the last failed write, ``None`` once a write succeeds again.
        self.last_error: str | None = None
        try:
            self.conn = sqlite3.connect(
                str(self.path), check_same_thread=False, isolation_level=None
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(schema)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the delivery database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close the connection."""
        with self.lock:
            self.conn.close()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` under the lock; any SQLite error
        rolls back, is remembered as :attr:`last_error` and raised as
        :class:`StorageError` naming ``what``."""
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                yield self.conn
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self.conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.execute("ROLLBACK")
                self.last_error = f"{what}: {exc}"
                raise StorageError(f"cannot {what}: {exc}") from exc
            self.last_error = None

    def read(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        """Rows of a query (under the lock)."""
        with self.lock:
            try:
                return self.conn.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StorageError(f"cannot read {self.path.name}: {exc}") from exc
