"""Persisted chunks and series in SQLite (WAL journal mode, one writer, many readers).

Tables:

* ``symbols(id, text)``: every label name, label value and source once;
* ``series(id, labels, source, persisted_maxt)``: every series with data on
  disk, its labels as varint symbol ids (name, value, name, value...);
  ``persisted_maxt`` is the newest sample already in a chunk, so the WAL
  replay knows what it may skip;
* ``chunks(id, series_id, mint, maxt, data)``: Gorilla chunks (see
  :mod:`soulwatch.tsdb.chunks`). A rowid table, so that appended chunks fill
  whole pages (an index-keyed table splits pages half full on append), with
  an index on ``(series_id, mint)`` for reads;
* ``batches(id, first_chunk, last_chunk, mint, maxt)``: the chunk id range
  each compaction wrote and its time span. Retention works through it (like
  Prometheus dropping blocks) instead of an index on ``maxt`` over every
  chunk, which would cost about a quarter of a byte per sample.

The writer connection is used by one thread at a time (the TSDB's maintenance
lock); each reading thread gets its own connection, so readers never wait for
the writer (SQLite's WAL mode).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from soulwatch.exceptions import StorageError
from soulwatch.tsdb.model import Labels

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS symbols (id INTEGER PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    labels BLOB NOT NULL,
    source INTEGER NOT NULL,
    persisted_maxt INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    series_id INTEGER NOT NULL,
    mint INTEGER NOT NULL,
    maxt INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS chunks_by_series ON chunks (series_id, mint);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    first_chunk INTEGER NOT NULL,
    last_chunk INTEGER NOT NULL,
    mint INTEGER NOT NULL,
    maxt INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class StoredSeries:
    """A series as loaded from SQLite at open."""

    id: int
    labels: Labels
    source: str
    persisted_maxt: int
    first_t: int | None


@dataclass(frozen=True)
class NewChunk:
    """A chunk to insert."""

    series_id: int
    mint: int
    maxt: int
    data: bytes


def _varints(numbers: Iterable[int]) -> bytes:
    out = bytearray()
    for number in numbers:
        value = number
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _read_varints(data: bytes) -> list[int]:
    out, value, shift = [], 0, 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            out.append(value)
            value = shift = 0
        else:
            shift += 7
    return out


class ChunkStore:
    """The SQLite file of one TSDB."""

    def __init__(self, path: Path, *, busy_timeout: float) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._symbols: dict[str, int] = {}  # the writer's view of the symbols table
        try:
            self._writer = self._connect()
            self._writer.execute("PRAGMA auto_vacuum = INCREMENTAL")  # only takes on a new file
            self._writer.execute("PRAGMA journal_mode = WAL")
            # FULL: a compaction's commit is on disk before its WAL segments are deleted.
            self._writer.execute("PRAGMA synchronous = FULL")
            with self._writer:
                self._writer.executescript(_SCHEMA)
                row = self._writer.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
                if row is None:
                    self._writer.execute(
                        "INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                    )
                elif int(row[0]) != SCHEMA_VERSION:
                    raise StorageError(
                        f"{path}: schema version {row[0]}, this soulwatch reads {SCHEMA_VERSION}"
                    )
            for sym_id, text in self._writer.execute("SELECT id, text FROM symbols"):
                self._symbols[text] = sym_id
        except sqlite3.Error as exc:
            raise StorageError(f"{path}: cannot open the chunk database: {exc}") from exc

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self._busy_timeout, check_same_thread=False, isolation_level=None
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def load_series(self) -> list[StoredSeries]:
        """Every stored series with the time of its oldest chunk."""
        first = dict(
            self._writer.execute("SELECT series_id, min(mint) FROM chunks GROUP BY series_id")
        )
        text = {sym_id: name for name, sym_id in self._symbols.items()}
        out = []
        for sid, labels, source, persisted_maxt in self._writer.execute(
            "SELECT id, labels, source, persisted_maxt FROM series ORDER BY id"
        ):
            ids = _read_varints(labels)
            pairs = Labels((text[ids[i]], text[ids[i + 1]]) for i in range(0, len(ids), 2))
            out.append(StoredSeries(sid, pairs, text[source], persisted_maxt, first.get(sid)))
        return out

    def _symbol(self, text: str, added: list[tuple[int, str]]) -> int:
        sym_id = self._symbols.get(text)
        if sym_id is None:
            sym_id = self._symbols[text] = len(self._symbols) + 1
            added.append((sym_id, text))
        return sym_id

    def write(
        self,
        new_series: Iterable[tuple[int, Labels, str]],
        chunks: Sequence[NewChunk],
        persisted: Iterable[tuple[int, int]],
    ) -> None:
        """In one transaction: add series, add chunks, record each series' ``persisted_maxt``."""
        conn = self._writer
        added: list[tuple[int, str]] = []
        rows = [
            (
                sid,
                _varints(self._symbol(part, added) for pair in lbls for part in pair),
                self._symbol(src, added),
            )
            for sid, lbls, src in new_series
        ]
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany("INSERT INTO symbols VALUES (?, ?)", added)
                conn.executemany(
                    "INSERT OR IGNORE INTO series VALUES (?, ?, ?, -9223372036854775808)", rows
                )
                if chunks:
                    self._insert_batch(chunks)
                conn.executemany(
                    "UPDATE series SET persisted_maxt = max(persisted_maxt, ?) WHERE id = ?",
                    ((maxt, sid) for sid, maxt in persisted),
                )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            for _, text in added:  # not stored after all
                del self._symbols[text]
            raise StorageError(f"{self.path}: cannot write chunks: {exc}") from exc

    def _insert_batch(self, chunks: Sequence[NewChunk]) -> None:
        conn = self._writer
        # Ids above every chunk and every batch range, so ranges never overlap.
        (top,) = conn.execute(
            "SELECT max(coalesce((SELECT max(id) FROM chunks), 0),"
            " coalesce((SELECT max(last_chunk) FROM batches), 0))"
        ).fetchone()
        first = int(top) + 1
        conn.executemany(
            "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?)",
            ((first + i, c.series_id, c.mint, c.maxt, c.data) for i, c in enumerate(chunks)),
        )
        conn.execute(
            "INSERT INTO batches (first_chunk, last_chunk, mint, maxt) VALUES (?, ?, ?, ?)",
            (
                first,
                first + len(chunks) - 1,
                min(c.mint for c in chunks),
                max(c.maxt for c in chunks),
            ),
        )

    def read_chunks(self, series_id: int, mint: int, maxt: int) -> list[bytes]:
        """Chunks of a series overlapping ``[mint, maxt]``, oldest first."""
        try:
            rows = self._reader().execute(
                "SELECT data FROM chunks WHERE series_id = ? AND mint <= ? AND maxt >= ?"
                " ORDER BY mint",
                (series_id, maxt, mint),
            )
            return [bytes(r[0]) for r in rows]
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot read chunks: {exc}") from exc

    def delete_before(self, cutoff: int) -> tuple[int, set[int]]:
        """Delete chunks whose newest sample is older than ``cutoff``: (count, series ids)."""

        def work(conn: sqlite3.Connection) -> list[int]:
            ids: list[int] = []
            old = conn.execute(
                "SELECT id, first_chunk, last_chunk, maxt FROM batches WHERE mint < ?", (cutoff,)
            ).fetchall()
            for batch, first, last, maxt in old:
                if maxt < cutoff:  # all of it
                    ids += self._delete_range(conn, batch, first, last)
                    continue
                ids += [
                    r[0]
                    for r in conn.execute(
                        "DELETE FROM chunks WHERE id BETWEEN ? AND ? AND maxt < ?"
                        " RETURNING series_id",
                        (first, last, cutoff),
                    )
                ]
                conn.execute(
                    "UPDATE batches SET mint = (SELECT coalesce(min(mint), ?) FROM chunks"
                    " WHERE id BETWEEN ? AND ?) WHERE id = ?",
                    (cutoff, first, last, batch),
                )
            return ids

        return self._delete(work)

    def delete_oldest(self) -> tuple[int, set[int]]:
        """Delete the chunks of the compaction batch with the oldest data: (count, series ids)."""

        def work(conn: sqlite3.Connection) -> list[int]:
            row = conn.execute(
                "SELECT id, first_chunk, last_chunk FROM batches ORDER BY maxt LIMIT 1"
            ).fetchone()
            return [] if row is None else self._delete_range(conn, *row)

        return self._delete(work)

    @staticmethod
    def _delete_range(conn: sqlite3.Connection, batch: int, first: int, last: int) -> list[int]:
        conn.execute("DELETE FROM batches WHERE id = ?", (batch,))
        return [
            r[0]
            for r in conn.execute(
                "DELETE FROM chunks WHERE id BETWEEN ? AND ? RETURNING series_id", (first, last)
            )
        ]

    def _delete(self, work: Callable[[sqlite3.Connection], list[int]]) -> tuple[int, set[int]]:
        conn = self._writer
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                ids = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if ids:
                conn.execute("PRAGMA incremental_vacuum")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot delete chunks: {exc}") from exc
        return len(ids), set(ids)

    def first_times(self, series_ids: Iterable[int]) -> dict[int, int]:
        """The oldest chunk time of each given series that still has chunks."""
        out = {}
        for sid in series_ids:
            row = self._writer.execute(
                "SELECT min(mint) FROM chunks WHERE series_id = ?", (sid,)
            ).fetchone()
            if row[0] is not None:
                out[sid] = int(row[0])
        return out

    def delete_series(self, series_ids: Sequence[int]) -> None:
        """Forget series that have no chunk left."""
        if not series_ids:
            return
        try:
            with self._writer:
                self._writer.executemany(
                    "DELETE FROM series WHERE id = ?", ((sid,) for sid in series_ids)
                )
        except sqlite3.Error as exc:
            raise StorageError(f"{self.path}: cannot delete series: {exc}") from exc

    def size(self) -> int:
        """Bytes of live database pages.

        SQLite's own ``-wal`` file is left out: it is scratch space that the
        automatic checkpoint keeps to about 4 MiB, and deleting chunks cannot
        shrink it, so counting it would make size retention chase a fixed cost.
        """
        conn = self._reader()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        return int((pages - free) * page_size)

    def checkpoint(self) -> None:
        """Fold SQLite's own WAL file back into the database and truncate it."""
        self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Close every connection."""
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()
