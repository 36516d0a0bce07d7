"""Writes of the silence and acknowledgement stores: why they fail, and when they work again.

Those stores write only when someone asks (a new silence, an
acknowledgement). On a full disk that write fails: the store remembers why
(store health reports it, see :mod:`soulwatch.store_health`) and refuses
with a :class:`~soulwatch.exceptions.StorageError` that names the cause and
the data directory, while everything already stored stays readable. Since
nothing else would write again to find out that space is back,
:meth:`StoreWrites.recheck` writes one small probe row while the store is
failing (housekeeping calls it every few seconds).
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from soulwatch.exceptions import StorageError

_PROBE_SCHEMA = "CREATE TABLE IF NOT EXISTS write_probe (store TEXT PRIMARY KEY, at REAL NOT NULL)"


def describe(exc: sqlite3.Error, path: Path) -> str:
    """SQLite's error in words an operator acts on: a full disk says so plainly."""
    name = getattr(exc, "sqlite_errorname", "")
    full = name == "SQLITE_FULL"
    if not full and name.startswith("SQLITE_IOERR"):
        with contextlib.suppress(OSError):
            full = shutil.disk_usage(path.parent).free == 0
    reason = "no space left on device" if full else str(exc)
    return f"{reason} (data dir {path.parent})"


class StoreWrites:
    """The writes of one store on a shared connection and lock, and their last error."""

    def __init__(
        self, store: str, conn: sqlite3.Connection, lock: threading.Lock, path: Path
    ) -> None:
        self._store = store
        self._conn = conn
        self._lock = lock
        self._path = path
        #: Why the last write failed, ``None`` once one works again.
        self.last_error: str | None = None
        conn.execute(_PROBE_SCHEMA)

    @contextlib.contextmanager
    def writing(self, what: str) -> Iterator[sqlite3.Connection]:
        """A write (caller holds the lock); a SQLite error becomes ``StorageError``
        saying ``cannot <what>: <cause> (data dir ...)`` and is remembered."""
        try:
            yield self._conn
        except sqlite3.Error as exc:
            self.last_error = f"cannot {what}: {describe(exc, self._path)}"
            raise StorageError(self.last_error) from exc
        self.last_error = None

    def recheck(self, now: float) -> None:
        """While failing, try one small write: its success clears the error."""
        if self.last_error is None:
            return
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT OR REPLACE INTO write_probe VALUES (?, ?)", (self._store, now)
                )
            except sqlite3.Error:
                return  # still failing: the error of the write that failed stays
        self.last_error = None
