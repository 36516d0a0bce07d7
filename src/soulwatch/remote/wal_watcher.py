"""Follows the TSDB's write-ahead log from a persisted cursor, as Prometheus's WAL watcher does.

What the WAL holds is exactly what the TSDB committed, in commit order, and
it survives a ``kill -9``; so a sender that reads it and saves how far it got
(after the receiver acknowledged) loses nothing and resumes where it stopped.
The TSDB keeps the segments a watcher still needs (:meth:`TSDB.hold_wal`).

The cursor is ``(segment, offset, skip)``: the record at ``offset`` of
``segment`` is the next to read, and its first ``skip`` samples were already
sent (a record of a big scrape may be split across requests).
"""

from __future__ import annotations

import contextlib
import json
import os
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from soulwatch.exceptions import StorageError
from soulwatch.tsdb.model import Labels
from soulwatch.tsdb.wal import RecordType, decode_samples, decode_series, records_in, segment_name

_log = structlog.get_logger("soulwatch.remote")

#: The most bytes of a segment read at once (a record is never bigger than a commit).
READ_BYTES = 8 << 20


@dataclass(frozen=True)
class Cursor:
    """Where reading resumes: a record of a segment, and how many of its samples are done."""

    segment: int
    offset: int
    skip: int = 0


@dataclass
class RoundState:
    """A round being sent: ``count`` samples read from the cursor, split into
    requests by ``shards`` and ``per_send``; ``done[shard]`` requests answered.

    The WAL after the cursor never changes, so reading ``count`` samples again
    and splitting them the same way rebuilds the very same requests: after a
    crash only the unanswered ones are sent, and a receiver that rejects an
    overlap (Prometheus answers 400 to a sample older than its newest) never
    sees one.
    """

    count: int
    shards: int
    per_send: int
    done: dict[int, int] = field(default_factory=dict)


@dataclass
class CursorFile:
    """The cursor saved in one small JSON file, rewritten in place by one ``pwrite``.

    A queue saves after every answered request, so the save must be cheap:
    the file stays open and each save is a single write of a fixed-size,
    space-padded record at offset 0, which a ``kill -9`` cannot cut in half
    (a rename per save costs more than the request it records).

    ``since_ms`` is when this queue first started: on a first start, samples
    older than that are not sent (Prometheus's watcher does the same), so
    adding ``remote_write`` to a long-running monitor does not replay its past.
    """

    path: Path
    _fd: int | None = field(default=None, repr=False)
    _size: int = field(default=4096, repr=False)

    def load(self) -> tuple[Cursor, int, RoundState | None] | None:
        """The saved cursor, ``since_ms`` and round in flight, or None on a first start."""
        try:
            raw = json.loads(self.path.read_text().strip())
            cursor = Cursor(int(raw["segment"]), int(raw["offset"]), int(raw["skip"]))
            rnd = raw.get("round")
            state = None
            if rnd is not None:
                done = {int(k): int(v) for k, v in rnd["done"].items()}
                state = RoundState(
                    int(rnd["count"]), int(rnd["shards"]), int(rnd["per_send"]), done
                )
            return cursor, int(raw["since_ms"]), state
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StorageError(f"{self.path}: unreadable remote write cursor ({exc})") from exc

    def save(self, cursor: Cursor, since_ms: int, state: RoundState | None = None) -> None:
        """Write the cursor (a crash leaves the old file or the new one, never half)."""
        data: dict[str, object] = {
            "segment": cursor.segment,
            "offset": cursor.offset,
            "skip": cursor.skip,
            "since_ms": since_ms,
        }
        if state is not None:
            data["round"] = {
                "count": state.count,
                "shards": state.shards,
                "per_send": state.per_send,
                "done": {str(k): v for k, v in state.done.items()},
            }
        text = json.dumps(data).encode()
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            self._size = max(self._size, os.fstat(self._fd).st_size)
        while len(text) >= self._size:  # a round of many shards: grow, never shrink
            self._size *= 2
        os.pwrite(self._fd, text.ljust(self._size), 0)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class ReadResult:
    """Samples read by one :meth:`WalWatcher.read` and the cursor just past them."""

    ids: array[int] = field(default_factory=lambda: array("q"))
    ts: array[int] = field(default_factory=lambda: array("q"))
    vals: array[float] = field(default_factory=lambda: array("d"))
    end: Cursor | None = None
    segments_lost: int = 0  # segments deleted before they were read (past retention)


class WalWatcher:
    """Reads committed samples from ``directory`` starting at ``cursor``.

    ``labels_of`` finds the labels of a series whose SERIES record is in a
    segment already deleted (the TSDB still knows it). Not thread-safe: one
    queue owns one watcher.
    """

    def __init__(
        self,
        directory: Path,
        cursor: Cursor,
        *,
        since_ms: int,
        labels_of: Callable[[int], Labels | None],
    ) -> None:
        self.directory = directory
        self.cursor = cursor
        self.since_ms = since_ms
        self._labels_of = labels_of
        self.labels: dict[int, Labels] = {}

    def segments(self) -> list[int]:
        """The segment numbers on disk, oldest first."""
        found = []
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.directory):
                if entry.name.isdigit():
                    found.append(int(entry.name))
        return sorted(found)

    def load_series(self) -> int:
        """Read the SERIES records before the cursor (their samples were sent); returns how many."""
        count = 0
        for number in self.segments():
            if number > self.cursor.segment:
                break
            data = self._read(number, 0, None)
            stop = self.cursor.offset if number == self.cursor.segment else len(data)
            for kind, payload, end in records_in(data):
                if end > stop:
                    break
                if kind is RecordType.SERIES:
                    sid, _, labels = decode_series(payload)
                    self.labels[sid] = labels
                    count += 1
        return count

    def labels_for(self, series_id: int) -> Labels | None:
        """The labels of ``series_id`` from the WAL, or from the TSDB."""
        found = self.labels.get(series_id)
        if found is None:
            found = self._labels_of(series_id)
            if found is not None:
                self.labels[series_id] = found
        return found

    def _read(self, number: int, offset: int, size: int | None) -> bytes:
        try:
            with (self.directory / segment_name(number)).open("rb") as fh:
                fh.seek(offset)
                return fh.read() if size is None else fh.read(size)
        except FileNotFoundError:
            return b""

    def read(self, limit: int) -> ReadResult:
        """Up to ``limit`` samples after the cursor (fewer when caught up); advances the cursor.

        The cursor moves in memory only: the caller saves it once what was
        read is acknowledged, and on a failure rewinds with :meth:`rewind`.
        """
        out = ReadResult()
        cur = self.cursor
        for _ in range(10_000):  # bounded: each round consumes data or stops
            if len(out.ids) >= limit:
                break
            segments = self.segments()
            if cur.segment not in segments:
                later = [s for s in segments if s > cur.segment]
                if not later:
                    break
                out.segments_lost += 1 if cur.offset or cur.skip else 0
                cur = Cursor(later[0], 0, 0)
                continue
            closed = segments[-1] > cur.segment  # the writer has moved on: this one is complete
            data = self._read(cur.segment, cur.offset, READ_BYTES)
            if len(data) == READ_BYTES and next(records_in(data), None) is None:
                data = self._read(cur.segment, cur.offset, None)  # one record bigger than a read
            base = cur.offset
            record_start = 0
            full = False
            for kind, payload, end in records_in(data):
                if kind is RecordType.SERIES:
                    sid, _, labels = decode_series(payload)
                    self.labels[sid] = labels
                    cur = Cursor(cur.segment, base + end, 0)
                    record_start = end
                    continue
                ids, ts, vals = decode_samples(payload)
                n = len(ids)
                want = limit - len(out.ids)
                take = min(n - cur.skip, want)
                self._take(out, ids, ts, vals, lo=cur.skip, hi=cur.skip + take)
                if cur.skip + take < n:
                    cur = Cursor(cur.segment, base + record_start, cur.skip + take)
                    full = True
                    break
                cur = Cursor(cur.segment, base + end, 0)
                record_start = end
                if len(out.ids) >= limit:
                    full = True
                    break
            if full:
                break
            if len(data) == READ_BYTES and record_start > 0:
                continue  # more of this segment than one read
            if not closed:
                break  # caught up with the writer
            if record_start < len(data):
                _log.warning(
                    "remote write skipped a damaged WAL record",
                    segment=cur.segment,
                    offset=base + record_start,
                )
            cur = Cursor(cur.segment + 1, 0, 0)
        self.cursor = cur
        out.end = cur
        return out

    def _take(
        self,
        out: ReadResult,
        ids: array[int],
        ts: array[int],
        vals: array[float],
        *,
        lo: int,
        hi: int,
    ) -> None:
        if lo == 0 and hi == len(ids) and (not ts or min(ts) >= self.since_ms):
            out.ids.extend(ids if ids.typecode == "q" else array("q", ids))
            out.ts.extend(ts)
            out.vals.extend(vals)
            return
        since = self.since_ms
        for i in range(lo, hi):
            if ts[i] >= since:
                out.ids.append(ids[i])
                out.ts.append(ts[i])
                out.vals.append(vals[i])

    def rewind(self, cursor: Cursor) -> None:
        """Go back to ``cursor`` (what was read after it will be read again)."""
        self.cursor = cursor
