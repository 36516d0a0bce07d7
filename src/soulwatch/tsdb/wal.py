"""The write-ahead log: append-only segment files that make commits survive a crash.

Each :meth:`WriteAheadLog.append` is one ``os.write`` of whole records, so a
committed batch is in the kernel's page cache when ``commit()`` returns and
survives a ``kill -9`` of the process; ``fsync`` runs at most every
``fsync_interval`` seconds, bounding what a power loss can take.

A record is ``type (1 byte) | payload length (4) | crc32 of type+payload (4) | payload``.
On open, segments are read in order; a record cut short or failing its
checksum ends its segment, which is truncated there so the next writer starts
on a clean boundary. What was read and repaired is reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from soulwatch.exceptions import StorageError
from soulwatch.tsdb.model import Labels

_HEADER = struct.Struct("<BII")
_SEGMENT_DIGITS = 8


class RecordType(IntEnum):
    """What a WAL record holds."""

    SERIES = 1
    SAMPLES = 2


@dataclass
class WalReadStats:
    """What reading the WAL found: segments, records, and bytes cut off as torn or corrupt."""

    segments: int = 0
    records: int = 0
    truncated_bytes: int = 0
    truncated_segments: int = 0


def encode_series(series_id: int, source: str, labels: Labels) -> bytes:
    """A SERIES record payload: the id, the source and the label pairs (JSON)."""
    return json.dumps([series_id, source, list(labels)], separators=(",", ":")).encode()


def decode_series(payload: bytes) -> tuple[int, str, Labels]:
    """Inverse of :func:`encode_series`."""
    series_id, source, pairs = json.loads(payload)
    return int(series_id), str(source), Labels((str(n), str(v)) for n, v in pairs)


_NARROW_IDS = 1  # flag: ids stored as uint32
_ONE_TIME = 2  # flag: every sample has the same timestamp (one scrape), stored once


def encode_samples(ids: array[int], ts: array[int], vals: array[float]) -> bytes:
    """A SAMPLES record payload: count, flags, ids, timestamps, raw float64 values.

    A scrape's batch shares one timestamp and ids fit 32 bits, so the usual
    record costs 12 bytes a sample instead of 24.
    """
    n = len(ids)
    flags = 0
    id_part: array[int] = ids
    if n:
        # one C-level pass; max() and min() would make an int object per id twice
        with contextlib.suppress(OverflowError):  # an id below 0 or above 2**32 - 1
            id_part = array("I", ids)
            flags |= _NARROW_IDS
    t_part: array[int] = ts
    if n and ts.count(ts[0]) == n:
        t_part = array("q", [ts[0]])
        flags |= _ONE_TIME
    parts: list[array[Any]] = [id_part, t_part, vals]
    if sys.byteorder == "big":  # the file format is little-endian everywhere
        parts = [array(p.typecode, p) for p in parts]
        for part in parts:
            part.byteswap()
    return struct.pack("<IB", n, flags) + b"".join(part.tobytes() for part in parts)


def decode_samples(payload: bytes) -> tuple[array[int], array[int], array[float]]:
    """Inverse of :func:`encode_samples`."""
    n, flags = struct.unpack_from("<IB", payload)
    id_size = 4 if flags & _NARROW_IDS else 8
    t_count = 1 if flags & _ONE_TIME else n
    if len(payload) != 5 + id_size * n + 8 * t_count + 8 * n:
        raise StorageError(f"WAL samples record of {len(payload)} bytes cannot hold {n} samples")
    ids: array[int] = array("I" if id_size == 4 else "q")
    ts, vals = array("q"), array("d")
    pos = 5
    ids.frombytes(payload[pos : pos + id_size * n])
    pos += id_size * n
    ts.frombytes(payload[pos : pos + 8 * t_count])
    pos += 8 * t_count
    vals.frombytes(payload[pos:])
    if sys.byteorder == "big":
        for part in (ids, ts, vals):
            part.byteswap()
    if t_count == 1 and n != 1:
        ts = array("q", ts.tolist() * n)
    return ids, ts, vals


def frame(kind: RecordType, payload: bytes) -> bytes:
    """One record with its header and checksum."""
    crc = zlib.crc32(payload, zlib.crc32(bytes([kind])))
    return _HEADER.pack(kind, len(payload), crc) + payload


def records_in(data: bytes, pos: int = 0) -> Iterator[tuple[RecordType, bytes, int]]:
    """The intact records of ``data`` from ``pos`` as ``(type, payload, end offset)``.

    Stops, without repairing anything, at the first record that is cut short
    or fails its checksum: for a reader following a segment being written,
    that is where the writer is (see :mod:`soulwatch.remote.wal_watcher`).
    """
    while pos < len(data):
        good = WriteAheadLog._record_at(data, pos)
        if good is None:
            return
        kind, payload, pos = good
        yield kind, payload, pos


def segment_name(number: int) -> str:
    """The file name of segment ``number``."""
    return f"{number:0{_SEGMENT_DIGITS}d}"


class WriteAheadLog:
    """Numbered segment files in one directory; one writer at a time."""

    def __init__(
        self, directory: Path, *, fsync_interval: float, monotonic: Callable[[], float]
    ) -> None:
        self.directory = directory
        self.fsync_interval = fsync_interval
        self._monotonic = monotonic
        self._fd: int | None = None
        self.segment = 0  # the number of the segment being written
        self.segment_bytes = 0
        self.segment_opened = 0.0
        self._last_sync = 0.0
        self._dirty = False
        self.fsyncs = 0
        directory.mkdir(parents=True, exist_ok=True)

    def segments(self) -> list[int]:
        """Numbers of the segment files on disk, oldest first."""
        found = []
        for entry in self.directory.iterdir():
            if entry.name.isdigit() and len(entry.name) == _SEGMENT_DIGITS:
                found.append(int(entry.name))
        return sorted(found)

    def _path(self, number: int) -> Path:
        return self.directory / segment_name(number)

    def read(self, stats: WalReadStats) -> Iterator[tuple[RecordType, bytes]]:
        """Every intact record, oldest first, truncating a segment at a torn or bad record."""
        for number in self.segments():
            path = self._path(number)
            data = path.read_bytes()
            stats.segments += 1
            pos = 0
            while pos < len(data):
                good = self._record_at(data, pos)
                if good is None:
                    # Cut here: a torn tail (the usual crash case) or corruption.
                    stats.truncated_bytes += len(data) - pos
                    stats.truncated_segments += 1
                    with path.open("r+b") as fh:
                        fh.truncate(pos)
                        os.fsync(fh.fileno())
                    break
                kind, payload, pos = good
                stats.records += 1
                yield kind, payload

    @staticmethod
    def _record_at(data: bytes, pos: int) -> tuple[RecordType, bytes, int] | None:
        if pos + _HEADER.size > len(data):
            return None
        kind, length, crc = _HEADER.unpack_from(data, pos)
        start = pos + _HEADER.size
        end = start + length
        if end > len(data) or kind not in (RecordType.SERIES, RecordType.SAMPLES):
            return None
        payload = data[start:end]
        if zlib.crc32(payload, zlib.crc32(bytes([kind]))) != crc:
            return None
        return RecordType(kind), payload, end

    def open_segment(self) -> int:
        """Start a new segment after the newest on disk; returns its number."""
        self.close()
        existing = self.segments()
        self.segment = (existing[-1] + 1) if existing else 1
        path = self._path(self.segment)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.segment_bytes = 0
        self.segment_opened = self._monotonic()
        self._fsync_dir()
        return self.segment

    def append(self, data: bytes) -> None:
        """Write framed records in one go; fsync if the last one is older than the interval."""
        if self._fd is None:
            raise StorageError("the WAL is closed")
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.segment_bytes += len(data)
        self._dirty = True
        if self._monotonic() - self._last_sync >= self.fsync_interval:
            self.sync()

    def sync(self) -> None:
        """fsync the open segment if anything was written since the last fsync."""
        if self._fd is not None and self._dirty:
            os.fsync(self._fd)
            self.fsyncs += 1
            self._dirty = False
        self._last_sync = self._monotonic()

    def delete_before(self, number: int) -> int:
        """Delete closed segments numbered below ``number``; returns how many."""
        deleted = 0
        for seg in self.segments():
            if seg < number and seg != self.segment:
                self._path(seg).unlink()
                deleted += 1
        return deleted

    def size(self) -> int:
        """Bytes of all segment files (safe to call while maintenance deletes some)."""
        total = 0
        for number in self.segments():
            with contextlib.suppress(FileNotFoundError):
                total += self._path(number).stat().st_size
        return total

    def close(self) -> None:
        """fsync and close the open segment."""
        if self._fd is not None:
            self.sync()
            os.close(self._fd)
            self._fd = None

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
