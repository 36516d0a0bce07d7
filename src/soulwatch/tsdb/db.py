"""The embedded TSDB: head in memory, write-ahead log, chunks in SQLite.

:class:`TSDB` implements :class:`~soulwatch.tsdb.storage.Storage`. Its API is
synchronous and thread-safe: one lock guards the head and the WAL writer (held
for the in-memory part of a commit or a read snapshot, never across SQLite
I/O), and a second one makes maintenance the single SQLite writer. The
service calls it from worker threads (``asyncio.to_thread``), never from the
event loop; :func:`run_maintenance` does that for the periodic work.

Life of a sample: ``appender().append()`` checks it (order, duplicates,
retention, series limits) and buffers it; ``commit()`` adds it to the head
and writes one WAL record with ``os.write`` (so it survives ``kill -9``);
:meth:`TSDB.maintain` later cuts full or old head runs into Gorilla chunks in
SQLite, deletes WAL segments whose samples are all in chunks, and applies
retention.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import math
import os
import struct
import threading
import time
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from soulwatch.clock import Clock, SystemClock
from soulwatch.exceptions import StorageError
from soulwatch.tsdb import chunks as chunkcodec
from soulwatch.tsdb.chunkcache import ChunkCache
from soulwatch.tsdb.chunkstore import ChunkStore, NewChunk
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.errors import (
    DuplicateSampleError,
    OutOfOrderSampleError,
    RejectedSample,
    RejectReason,
    SampleRejectedError,
    SampleTooOldError,
    SeriesLimitExceededError,
)
from soulwatch.tsdb.head import NO_TIME, HeadIndex, HeadSeries, absolute_times
from soulwatch.tsdb.metrics import TSDBCollector
from soulwatch.tsdb.model import ArraySeries, Labels, Matcher, Series, names_of, values_of
from soulwatch.tsdb.wal import (
    RecordType,
    WalReadStats,
    WriteAheadLog,
    decode_samples,
    decode_series,
    encode_samples,
    encode_series,
    frame,
    segment_name,
)

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    np = None  # type: ignore[assignment]

#: Selections come as one batch (:meth:`TSDB.select_batch`) when numpy is installed.
_BATCHES: bool = np is not None

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from prometheus_client.registry import CollectorRegistry

_FAR_FUTURE = 2**62
_LAST_T = attrgetter("last_t")
_BY_LABELS = attrgetter("labels")
_TYPECODE = attrgetter("typecode")
_PERSISTED_MAXT = itemgetter(1)  # of a snapshot entry
#: Matcher sets whose sorted series are remembered (a rule set has a few hundred).
_MATCHED_ENTRIES = 1024


@dataclass(slots=True)
class SeriesBatch:
    """Several series' samples end to end, as one selection hands them to the engine.

    Series ``i`` is ``labels[i]`` with the samples ``starts[i] .. starts[i] +
    lengths[i]`` of ``times`` (ms) and ``values``; every series has at least
    one sample, and they come sorted by labels, as :meth:`TSDB.select` does.
    """

    labels: list[Labels]
    times: NDArray[np.int64]
    values: NDArray[np.float64]
    lengths: NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.labels)

    def series(self) -> list[ArraySeries]:
        """The batch cut back into one :class:`ArraySeries` per series."""
        times = array("q")
        times.frombytes(self.times.tobytes())
        values = array("d")
        values.frombytes(self.values.tobytes())
        out = []
        start = 0
        for labels, n in zip(self.labels, self.lengths.tolist(), strict=True):
            out.append(ArraySeries(labels, times[start : start + n], values[start : start + n]))
            start += n
        return out


@dataclass(frozen=True)
class ReplayReport:
    """What opening the store recovered from the WAL."""

    segments: int
    records: int
    series_loaded: int  # from SQLite
    series_replayed: int  # created by WAL records
    samples_replayed: int  # put back into the head
    samples_already_persisted: int  # in the WAL and already in a chunk: skipped
    samples_dropped: int  # out of order, duplicate or past retention: skipped
    truncated_bytes: int  # a torn or corrupt tail cut off
    truncated_segments: int
    seconds: float


@dataclass(frozen=True)
class MaintenanceReport:
    """What one :meth:`TSDB.maintain` call did."""

    chunks_written: int
    samples_persisted: int
    series_persisted: int
    wal_segments_deleted: int
    retention_chunks_deleted: int
    retention_head_samples_dropped: int
    series_removed: int
    size_bytes: int


@dataclass
class TSDBStats:
    """Counters since open (read through :meth:`TSDB.stats`; exported by the collector)."""

    samples_appended: int = 0
    samples_rejected: dict[RejectReason, int] = field(default_factory=dict)
    duplicates_ignored: int = 0
    series_created: int = 0
    series_rejected: dict[str, int] = field(default_factory=dict)
    commits: int = 0
    chunks_written: int = 0
    samples_persisted: int = 0
    compactions: int = 0
    compaction_failures: int = 0
    retention_chunks_deleted: int = 0
    series_removed: int = 0
    wal_segments_deleted: int = 0
    wal_fsyncs: int = 0
    head_series: int = 0
    head_samples: int = 0
    chunk_cache_hits: int = 0  # a query's chunk found decoded already
    chunk_cache_misses: int = 0  # ... or decoded then
    chunk_cache_bytes: int = 0


@dataclass
class _WalMark:
    # Segments up to `segment` are deletable once every listed series has
    # persisted (or dropped) everything up to its listed time.
    segment: int
    ids: array[int]
    last_ts: array[int]


def _same_value(a: float, b: float) -> bool:
    # Bit-exact for NaNs: a staleness marker is not the same value as a plain NaN.
    if math.isnan(a) or math.isnan(b):
        return struct.pack("<d", a) == struct.pack("<d", b)
    return a == b


class TSDB:
    """The embedded time-series store in ``config.path``.

    ``clock`` drives retention and head cutting; ``registry``, if given, gets a
    collector exporting ``soulwatch_tsdb_*`` metrics. Opening replays the WAL:
    :attr:`replay` says what was recovered. Use as a context manager or call
    :meth:`close`.

    ``wal_only`` (agent mode) keeps no samples to query: maintenance drops the
    head's samples instead of writing them to chunks, so the WAL is all there
    is, kept until its readers (remote write) are past it or it is older than
    ``retention_time``.
    """

    def __init__(
        self,
        config: StorageConfig,
        *,
        clock: Clock | None = None,
        registry: CollectorRegistry | None = None,
        wal_only: bool = False,
    ) -> None:
        self.config = config
        self.wal_only = wal_only
        self.clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()  # head + WAL writer
        #: Why the last WAL write failed (a full disk), ``None`` once one succeeds again.
        self.wal_error: str | None = None
        self._maintenance_lock = threading.Lock()  # the single SQLite writer
        self._stats = TSDBStats()
        self._index = HeadIndex()
        self._unpersisted: list[HeadSeries] = []  # series not yet in SQLite
        self._marks: list[_WalMark] = []
        self._generation = 0  # bumped when series are removed
        # A selection's matching series sorted by labels, by matchers, with the
        # index state it was computed at: rules select the same series cycle
        # after cycle, and postings and sorting cost more than the samples.
        self._matched: dict[tuple[Matcher, ...], tuple[tuple[int, int], list[HeadSeries]]] = {}
        # Readers of the WAL (remote write): each says the oldest segment it still needs.
        self._wal_holds: list[Callable[[], int]] = []
        self._closed = False
        root = Path(config.path)
        root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock_directory(root)
        try:
            self._store = ChunkStore(root / "chunks.sqlite", busy_timeout=config.busy_timeout)
            # Persisted chunks decoded once for every query that reads them again.
            self._decoded = ChunkCache(config.chunk_cache_bytes, chunkcodec.decode)
            self._wal = WriteAheadLog(
                root / "wal",
                fsync_interval=config.wal_fsync_interval,
                monotonic=self.clock.monotonic,
            )
        except BaseException:
            os.close(self._lock_fd)
            raise
        try:
            self.replay = self._open()
        except BaseException:
            self._store.close()
            os.close(self._lock_fd)
            raise
        self._collector: TSDBCollector | None = None
        if registry is not None:
            self._collector = TSDBCollector(self)
            registry.register(self._collector)
        self._registry = registry

    @staticmethod
    def _lock_directory(root: Path) -> int:
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"{root}: the data directory is in use by another process") from exc
        return fd

    # ----------------------------------------------------------------- open

    def _open(self) -> ReplayReport:
        started = time.monotonic()
        stored = self._store.load_series()
        for row in stored:
            series = self._index.add(row.labels, row.source, row.id)
            series.persisted_maxt = series.last_t = row.persisted_maxt
            series.first_t = row.first_t if row.first_t is not None else NO_TIME
        cutoff = self._cutoff_ms()
        stats = WalReadStats()
        alias: dict[int, HeadSeries] = {}
        replayed_series = samples = skipped = dropped = 0
        for kind, payload in self._wal.read(stats):
            if kind is RecordType.SERIES:
                sid, source, labels = decode_series(payload)
                known = self._index.by_id(sid) or self._index.get(labels)
                if known is None:
                    known = self._index.add(labels, source, sid)
                    self._unpersisted.append(known)
                    replayed_series += 1
                alias[sid] = known
                continue
            ids, ts, vals = decode_samples(payload)
            for sid, t, v in zip(ids, ts, vals, strict=True):
                found = alias.get(sid) or self._index.by_id(sid)
                if found is None:
                    dropped += 1
                elif t <= found.persisted_maxt:
                    skipped += 1
                elif t < cutoff or t <= found.last_t:
                    dropped += 1
                else:
                    found.add(t, v)
                    samples += 1
        self._wal.open_segment()
        self._mark_segment(self._wal.segment - 1)
        # Series recreated from old WAL records whose samples were all past retention.
        self._unpersisted = [s for s in self._unpersisted if s.has_data()]
        self._store.delete_series([s.id for s in self._forget_dead(cutoff)])
        self._stats.head_series = len(self._index)
        return ReplayReport(
            segments=stats.segments,
            records=stats.records,
            series_loaded=len(stored),
            series_replayed=replayed_series,
            samples_replayed=samples,
            samples_already_persisted=skipped,
            samples_dropped=dropped,
            truncated_bytes=stats.truncated_bytes,
            truncated_segments=stats.truncated_segments,
            seconds=time.monotonic() - started,
        )

    def _mark_segment(self, segment: int) -> None:
        # Remember, for segments up to `segment`, what must be in chunks first.
        ids: array[int] = array("q")
        last: array[int] = array("q")
        for series in self._index.all():
            if series.n:
                ids.append(series.id)
                last.append(series.last_t)
        self._marks.append(_WalMark(segment, ids, last))

    def _cutoff_ms(self) -> int:
        return int((self.clock.time() - self.config.retention_time) * 1000)

    # --------------------------------------------------------------- append

    def appender(self, source: str = "", *, strict: bool = False) -> TSDBAppender:
        """A batch for one scrape or evaluation.

        ``source`` (``"job/instance"``) is what ``series_limit_per_source`` counts
        against (no per-source limit when empty). Refused samples are listed in
        the appender's ``rejected`` after commit; ``strict`` makes ``append``
        raise for them instead.
        """
        return TSDBAppender(self, source, strict=strict)

    def _check_limits(self, labels: Labels, t_ms: int, source: str, pending: int) -> None:
        # Caller holds no lock for the append-time check; commit re-checks under the lock.
        cfg = self.config
        total = cfg.series_limit_total
        if total is not None and len(self._index) + pending >= total:
            self._count_series_rejected("total")
            raise SeriesLimitExceededError(
                f"series_limit_total ({total}) reached; new series rejected",
                labels=labels,
                t_ms=t_ms,
                limit="total",
            )
        per = cfg.series_limit_per_source
        if source and per is not None and self._index.source_count(source) + pending >= per:
            self._count_series_rejected("per_source")
            raise SeriesLimitExceededError(
                f"series_limit_per_source ({per}) reached for {source!r}; new series rejected",
                labels=labels,
                t_ms=t_ms,
                limit="per_source",
            )

    def _count_series_rejected(self, limit: str) -> None:
        with self._lock:
            rejected = self._stats.series_rejected
            rejected[limit] = rejected.get(limit, 0) + 1
            reasons = self._stats.samples_rejected
            reasons[RejectReason.SERIES_LIMIT] = reasons.get(RejectReason.SERIES_LIMIT, 0) + 1

    def _count_rejected(self, reason: RejectReason, n: int = 1) -> None:
        with self._lock:
            reasons = self._stats.samples_rejected
            reasons[reason] = reasons.get(reason, 0) + n

    def _commit(self, appender: TSDBAppender) -> None:
        with self._lock:
            if self._closed:
                raise StorageError("the TSDB is closed")
            records: list[bytes] = []
            resolved: dict[int, HeadSeries | None] = {}
            if appender._new or appender._generation != self._generation:
                self._resolve_new(appender, resolved, records)
            ids, ts_out, vals_out = self._apply(appender, resolved)
            stats = self._stats
            if ids:
                records.append(frame(RecordType.SAMPLES, encode_samples(ids, ts_out, vals_out)))
            stats.samples_appended += len(ids)
            stats.commits += 1
            if records:
                try:
                    self._wal.append(b"".join(records))
                except OSError as exc:
                    self.wal_error = f"cannot write the WAL: {exc}"
                    raise StorageError(
                        f"cannot write the WAL ({exc}): the batch is visible but not durable"
                    ) from exc
                self.wal_error = None

    def _apply(
        self, appender: TSDBAppender, resolved: dict[int, HeadSeries | None]
    ) -> tuple[array[int], array[int], array[float]]:
        # The hot loop of a commit (head lock held): one pass, locals only. The
        # batch's own time and value arrays go to the WAL as they are unless a
        # sample was skipped (rare), so only the ids are collected here.
        ids = array("q")
        ids_append = ids.append
        skipped: list[int] = []
        lookup = resolved.get if resolved else None
        no_time = NO_TIME
        i = -1
        for pending, t, v in zip(appender._series, appender._ts, appender._vals, strict=True):
            i += 1
            series = pending if lookup is None else lookup(id(pending), pending)
            if series is None:  # refused by a series limit (already listed)
                skipped.append(i)
                continue
            if t <= series.last_t:
                self._refuse_at_commit(appender, series, t, v)
                skipped.append(i)
                continue
            # Written into the next free slot: a head buffer is never resized.
            n = series.n
            try:
                series.ts[n] = t - series.base
            except (IndexError, OverflowError):  # full or empty buffers, or a huge gap
                series.append_slow(t, v)
            else:
                series.vals[n] = v
                series.n = n + 1
            series.last_t = t
            series.last_v = v
            if series.first_t == no_time:
                series.first_t = t
            ids_append(series.id)
        if not skipped:
            return ids, appender._ts, appender._vals
        gone = set(skipped)
        keep = [j for j in range(len(appender._ts)) if j not in gone]
        ts_out = array("q", [appender._ts[j] for j in keep])
        vals_out = array("d", [appender._vals[j] for j in keep])
        return ids, ts_out, vals_out

    def _refuse_at_commit(
        self, appender: TSDBAppender, series: HeadSeries, t: int, v: float
    ) -> None:
        # Another batch committed this series first (head lock held).
        stats = self._stats
        if t == series.last_t and _same_value(v, series.last_v):
            stats.duplicates_ignored += 1
            return
        reason = (
            RejectReason.DUPLICATE_TIMESTAMP if t == series.last_t else RejectReason.OUT_OF_ORDER
        )
        appender._refused.append(RejectedSample(series.labels, t, v, reason))
        stats.samples_rejected[reason] = stats.samples_rejected.get(reason, 0) + 1

    def _resolve_new(
        self, appender: TSDBAppender, resolved: dict[int, HeadSeries | None], records: list[bytes]
    ) -> None:
        # Register the batch's new series (limits re-checked: another batch may
        # have filled them) and re-resolve series removed by retention meanwhile.
        index = self._index
        cfg = self.config
        seen: set[int] = set()
        for series in appender._series:
            key = id(series)
            if key in seen:
                continue
            seen.add(key)
            if series.id > 0 and index.by_id(series.id) is series:
                continue
            existing = index.get(series.labels)
            if existing is not None:
                resolved[key] = existing
                continue
            limit = None
            if cfg.series_limit_total is not None and len(index) >= cfg.series_limit_total:
                limit = "total"
            elif (
                appender._source
                and cfg.series_limit_per_source is not None
                and index.source_count(appender._source) >= cfg.series_limit_per_source
            ):
                limit = "per_source"
            if limit is not None:
                resolved[key] = None
                self._stats.series_rejected[limit] = self._stats.series_rejected.get(limit, 0) + 1
                for s, t, v in zip(appender._series, appender._ts, appender._vals, strict=True):
                    if s is series:
                        appender._refused.append(
                            RejectedSample(series.labels, t, v, RejectReason.SERIES_LIMIT)
                        )
                continue
            created = index.add(series.labels, appender._source)
            self._unpersisted.append(created)
            self._stats.series_created += 1
            records.append(
                frame(RecordType.SERIES, encode_series(created.id, created.source, created.labels))
            )
            resolved[key] = created

    # ----------------------------------------------------------------- read

    def _snapshot(
        self, matchers: Sequence[Matcher], mint: int, maxt: int
    ) -> list[tuple[HeadSeries, int, array[int], int, memoryview]]:
        # Under the lock: which series, how far their chunks go, and their head
        # samples in range (time offsets from the series' base, copied, and a
        # read-only view of the values). Chunks are read after, without the lock.
        out = []
        with self._lock:
            if self._closed:
                raise StorageError("the TSDB is closed")
            for series in self._matching_sorted(matchers):
                first_t, last_t = series.first_t, series.last_t
                if first_t == NO_TIME or first_t > maxt or last_t < mint:
                    continue
                head_ts, base, head_vals = series.window(mint, maxt)
                out.append((series, series.persisted_maxt, head_ts, base, head_vals))
        return out

    def _matching_sorted(self, matchers: Sequence[Matcher]) -> list[HeadSeries]:
        """The head series matching every matcher, sorted by labels (head lock held).

        Remembered per matcher set until the index changes: a new series
        raises ``next_id`` and a removal bumps ``_generation``, and either
        makes every remembered list stale (series are never relabelled).
        """
        key = tuple(matchers)
        state = (self._generation, self._index.next_id)
        hit = self._matched.get(key)
        if hit is not None and hit[0] == state:
            return hit[1]
        # Sorted by labels before the time filter (unique labels: the same
        # order), with a C key function rather than a Python one per series.
        found = sorted(self._index.matching(matchers), key=_BY_LABELS)
        if len(self._matched) >= _MATCHED_ENTRIES:
            self._matched.clear()  # bounded: many one-off selectors start afresh
        self._matched[key] = (state, found)
        return found

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """Series matching every matcher with their samples in ``[mint_ms, maxt_ms]``, by labels."""
        for s in self.select_arrays(matchers, mint_ms, maxt_ms):
            yield Series(s.labels, s.timestamps.tolist(), list(s.values))

    def select_arrays(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> Iterator[ArraySeries]:
        """As :meth:`select`, with the samples in compact arrays (no Python object per sample).

        The PromQL engine reads these: the values of a series held in the head
        are a read-only view of the head's own buffer (no copy), its times one
        copy, and the engine's numpy path reads the buffers directly.
        """
        found = self._snapshot(matchers, mint_ms, maxt_ms)
        times = absolute_times([(offsets, base) for _, _, offsets, base, _ in found])
        if max(map(_PERSISTED_MAXT, found), default=NO_TIME) < mint_ms:
            # Nothing in range was persisted yet (recent data, every rule query):
            # the head copies are the answer, built in one comprehension.
            return iter(
                [
                    ArraySeries(item[0].labels, head_ts, item[4])
                    for item, head_ts in zip(found, times, strict=True)
                    if head_ts
                ]
            )
        return self._with_chunks(found, times, mint_ms, maxt_ms)

    def select_batch(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> SeriesBatch | None:
        """As :meth:`select_arrays`, in one :class:`SeriesBatch`; ``None`` when it cannot be.

        Only a selection held entirely in the head (recent data: every rule
        query) comes as a batch, and only with numpy; otherwise the caller
        reads :meth:`select_arrays`. The head's samples in range are copied
        under the lock as for :meth:`select_arrays`, then joined and widened
        to absolute times in one numpy pass for all series, with no Python
        object per series besides the copies.
        """
        if not _BATCHES:
            return None
        labels: list[Labels] = []
        offsets: list[array[int]] = []
        values: list[array[float]] = []
        bases: list[int] = []
        with self._lock:
            if self._closed:
                raise StorageError("the TSDB is closed")
            for series in self._matching_sorted(matchers):
                first_t, last_t = series.first_t, series.last_t
                if first_t == NO_TIME or first_t > maxt_ms or last_t < mint_ms:
                    continue
                if series.persisted_maxt >= mint_ms:
                    return None  # part of the range is in chunks: select_arrays merges them
                # Only the first ``n`` slots of the head's buffers are samples.
                base, ts, n = series.base, series.ts, series.n
                lo = bisect.bisect_left(ts, mint_ms - base, 0, n) if first_t < mint_ms else 0
                hi = bisect.bisect_right(ts, maxt_ms - base, 0, n) if last_t > maxt_ms else n
                if lo < hi:
                    labels.append(series.labels)
                    offsets.append(ts[lo:hi])
                    values.append(series.vals[lo:hi])
                    bases.append(base)
        count = len(labels)
        lengths = np.fromiter(map(len, offsets), dtype=np.int64, count=count)
        typecodes = set(map(_TYPECODE, offsets))
        if typecodes <= {"i"}:
            narrow = np.frombuffer(b"".join(offsets), dtype=np.dtype(f"i{array('i').itemsize}"))
        else:  # a series widened to 64-bit absolute times (base 0) among them
            narrow = np.concatenate([np.asarray(o, dtype=np.int64) for o in offsets])
        times = narrow.astype(np.int64)
        times += np.repeat(np.fromiter(bases, dtype=np.int64, count=count), lengths)
        joined = np.frombuffer(b"".join(values), dtype=np.float64) if values else np.zeros(0)
        return SeriesBatch(labels, times, joined, lengths)

    def _with_chunks(
        self,
        found: list[tuple[HeadSeries, int, array[int], int, memoryview]],
        times: list[array[int]],
        mint_ms: int,
        maxt_ms: int,
    ) -> Iterator[ArraySeries]:
        for (series, persisted_maxt, _, _, head_vals), head_ts in zip(found, times, strict=True):
            if persisted_maxt < mint_ms or series.id <= 0:
                # All in the head (the usual case for recent data): the copy is the answer.
                if head_ts:
                    yield ArraySeries(series.labels, head_ts, head_vals)
                continue
            ts: array[int] = array("q")
            vals: array[float] = array("d")
            upper = min(maxt_ms, persisted_maxt)  # newer samples come from the head copy
            for data in self._store.read_chunks(series.id, mint_ms, upper):
                cts, cvals = self._decoded.get(data)
                lo = bisect.bisect_left(cts, mint_ms)
                hi = bisect.bisect_right(cts, upper)
                ts.extend(cts[lo:hi])
                vals.extend(cvals[lo:hi])
            ts.extend(head_ts)
            vals.frombytes(head_vals.cast("B"))
            if ts:
                # A view like the head's, so a batch of series joins in one call.
                yield ArraySeries(series.labels, ts, memoryview(vals).toreadonly())

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Label sets of matching series with at least one sample in the range."""
        out = []
        for series, persisted_maxt, head_ts, _, _ in self._snapshot(matchers, mint_ms, maxt_ms):
            inside = mint_ms <= series.first_t and series.last_t <= maxt_ms
            if (
                head_ts
                or inside
                or (persisted_maxt >= mint_ms and self._chunks_have(series.id, mint_ms, maxt_ms))
            ):
                out.append(series.labels)
        return out

    def _chunks_have(self, series_id: int, mint: int, maxt: int) -> bool:
        for data in self._store.read_chunks(series_id, mint, maxt):
            cts, _ = self._decoded.get(data)
            i = bisect.bisect_left(cts, mint)
            if i < len(cts) and cts[i] <= maxt:
                return True
        return False

    def _label_sets(
        self, matchers: Sequence[Matcher], mint_ms: int | None, maxt_ms: int | None
    ) -> list[Labels]:
        if mint_ms is None and maxt_ms is None:
            with self._lock:
                return [s.labels for s in self._index.matching(matchers) if s.has_data()]
        lo = mint_ms if mint_ms is not None else -_FAR_FUTURE
        hi = maxt_ms if maxt_ms is not None else _FAR_FUTURE
        return self.series(matchers, lo, hi)

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted label names of the series with data (matching ``matchers`` if given)."""
        return names_of(self._label_sets(matchers, mint_ms, maxt_ms))

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name`` (of series matching ``matchers`` if given)."""
        return values_of(name, self._label_sets(matchers, mint_ms, maxt_ms))

    # ---------------------------------------------------------- maintenance

    def maintain(self, *, force: bool = False) -> MaintenanceReport:
        """Cut head samples into chunks, delete covered WAL segments, apply retention.

        Called on a schedule (see :func:`run_maintenance`); ``force`` writes every
        head sample to a chunk (used before a backup and by the benchmark).
        """
        with self._maintenance_lock:
            if self._closed:
                raise StorageError("the TSDB is closed")
            written = self._compact(force)
            chunks_deleted, head_dropped, removed = self._retain()
            wal_deleted = self._truncate_wal()
            with self._lock:
                self._wal.sync()
                self._stats.wal_fsyncs = self._wal.fsyncs
            size = self.size_bytes()
        return MaintenanceReport(
            chunks_written=written[0],
            samples_persisted=written[1],
            series_persisted=written[2],
            wal_segments_deleted=wal_deleted,
            retention_chunks_deleted=chunks_deleted,
            retention_head_samples_dropped=head_dropped,
            series_removed=removed,
            size_bytes=size,
        )

    def _compact(self, force: bool) -> tuple[int, int, int]:
        cfg = self.config
        per_chunk = cfg.chunk_samples
        old = int((self.clock.time() - cfg.head_max_age) * 1000)
        jobs: list[tuple[HeadSeries, int, int, list[int], array[float]]] = []
        with self._lock:
            wal = self._wal
            if wal.segment_bytes and (
                force
                or wal.segment_bytes >= cfg.wal_segment_max_bytes
                or self.clock.monotonic() - wal.segment_opened >= cfg.wal_segment_max_age
            ):
                closed = wal.segment
                wal.open_segment()
                self._mark_segment(closed)
            new_series = self._unpersisted
            self._unpersisted = []
            for series in self._index.all():
                n = series.n
                if not n:
                    continue
                first = per_chunk
                if series.persisted_maxt == NO_TIME:
                    # A series' first chunk is cut at a size of its own (1 to a whole
                    # chunk), so series created together do not fill and cut in step:
                    # the head then holds about half a chunk per series at any time,
                    # instead of swinging between empty and full all together.
                    first = 1 + (series.id * 7919) % per_chunk
                cut = 0 if n < first else first + ((n - first) // per_chunk) * per_chunk
                # A short remainder is cut too once it is old (a quiet or vanished series).
                if force or self.wal_only or (cut < n and series.time_at(cut) < old):
                    cut = n
                if cut:
                    jobs.append((series, cut, first, series.times(0, cut), series.values(0, cut)))
        try:
            chunks: list[NewChunk] = []
            persisted: list[tuple[int, int]] = []
            for series, _, first, ts, vals in jobs:
                persisted.append((series.id, ts[-1]))
                if self.wal_only:
                    continue  # an agent's samples live in the WAL until sent, then nowhere
                starts = [0, *range(first, len(ts), per_chunk)]
                for start, end in zip(starts, [*starts[1:], len(ts)], strict=True):
                    part_ts = ts[start:end]
                    data = chunkcodec.encode(part_ts, vals[start:end])
                    chunks.append(NewChunk(series.id, part_ts[0], part_ts[-1], data))
            self._store.write([(s.id, s.labels, s.source) for s in new_series], chunks, persisted)
        except BaseException:
            with self._lock:
                self._unpersisted[:0] = new_series
                self._stats.compaction_failures += 1
            raise
        samples = 0
        with self._lock:
            for series, cut, _, ts, _ in jobs:
                series.drop(cut)
                series.persisted_maxt = max(series.persisted_maxt, ts[-1])
                samples += cut
            stats = self._stats
            stats.compactions += 1
            stats.chunks_written += len(chunks)
            stats.samples_persisted += samples
        return len(chunks), samples, len(new_series)

    def _retain(self) -> tuple[int, int, int]:
        cutoff = self._cutoff_ms()
        deleted, affected = self._store.delete_before(cutoff)
        limit = self.config.retention_size
        for _ in range(100_000):  # bounded: each round deletes a batch or stops
            if limit is None:
                break
            excess = self.size_bytes() - limit
            if excess <= 0:
                break
            n, ids = self._store.delete_oldest()
            if not n:
                break
            deleted += n
            affected |= ids
        firsts = self._store.first_times(affected)
        dropped = 0
        with self._lock:
            for series in self._index.all():
                if series.n and series.time_at(0) < cutoff:
                    k = series.index_of(cutoff)
                    series.persisted_maxt = max(series.persisted_maxt, series.time_at(k - 1))
                    series.drop(k)
                    dropped += k
                    series.first_t = series.time_at(0) if series.n else NO_TIME
            for sid in affected:
                found = self._index.by_id(sid)
                if found is not None:
                    head_first = found.time_at(0) if found.n else NO_TIME
                    found.first_t = firsts.get(sid, head_first)
            dead = self._forget_dead(cutoff)
            self._stats.retention_chunks_deleted += deleted
            self._stats.series_removed += len(dead)
            self._stats.head_series = len(self._index)
        self._store.delete_series([s.id for s in dead])
        return deleted, dropped, len(dead)

    def _forget_dead(self, cutoff: int) -> list[HeadSeries]:
        # Series with no sample left and none written within retention. (A
        # series emptied by size retention but written recently is kept, so its
        # newest timestamp still guards against out-of-order samples.)
        unpersisted = {s.id for s in self._unpersisted}
        dead = [
            s
            for s in self._index.all()
            if not s.n and s.first_t == NO_TIME and s.last_t < cutoff and s.id not in unpersisted
        ]
        if dead:
            self._index.remove(dead)
            self._generation += 1
        return dead

    def _truncate_wal(self) -> int:
        deleted = 0
        keep = self._wal_keep_from()
        with self._lock:
            while self._marks:
                mark = self._marks[0]
                by_id = self._index.by_id
                for sid, last in zip(mark.ids, mark.last_ts, strict=True):
                    series = by_id(sid)
                    if series is not None and series.persisted_maxt < last:
                        return deleted
                if mark.segment >= keep:
                    # A reader still needs these: delete only what it is done with.
                    n = self._wal.delete_before(keep)
                    self._stats.wal_segments_deleted += n
                    return deleted + n
                self._marks.pop(0)
                n = self._wal.delete_before(mark.segment + 1)
                deleted += n
                self._stats.wal_segments_deleted += n
        return deleted

    # ------------------------------------------------------------ WAL readers

    @property
    def wal_directory(self) -> Path:
        """The directory of the WAL segments, for readers that follow it (remote write)."""
        return self._wal.directory

    def hold_wal(self, keep_from: Callable[[], int]) -> Callable[[], None]:
        """Keep WAL segments numbered ``keep_from()`` and later until the reader lets go.

        A reader that has not yet sent what it read (a receiver outage) holds
        the segments it still needs; maintenance deletes them anyway once their
        newest write is older than ``retention_time``, so a held WAL stays
        within retention. Returns the function that releases the hold.
        """
        with self._lock:
            self._wal_holds.append(keep_from)

        def release() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._wal_holds.remove(keep_from)

        return release

    def _wal_keep_from(self) -> int:
        with self._lock:
            holds = list(self._wal_holds)
        if not holds:
            return 2**62
        keep = min(hold() for hold in holds)
        # Past retention, a hold lapses: the segment's samples are expired anyway.
        oldest_kept = self.clock.time() - self.config.retention_time
        for number in self._wal.segments():
            if number < keep:
                continue
            try:
                mtime = (self._wal.directory / segment_name(number)).stat().st_mtime
            except FileNotFoundError:
                continue
            if number == self._wal.segment or mtime >= oldest_kept:
                break
            keep = number + 1
        return keep

    def series_labels(self, series_id: int) -> Labels | None:
        """The labels of series ``series_id`` if it is still known."""
        with self._lock:
            found = self._index.by_id(series_id)
            return found.labels if found is not None else None

    def sync(self) -> None:
        """fsync the WAL now (maintenance does this too)."""
        with self._lock:
            self._wal.sync()
            self._stats.wal_fsyncs = self._wal.fsyncs

    def size_bytes(self) -> int:
        """Bytes on disk that retention counts: live SQLite pages and the WAL segments."""
        return self._store.size() + self._wal.size()

    def checkpoint(self) -> None:
        """Fold SQLite's WAL file into the database (for measuring the file size)."""
        with self._maintenance_lock:
            self._store.checkpoint()

    def stats(self) -> TSDBStats:
        """A consistent copy of the counters, with head gauges filled in."""
        with self._lock:
            snap = TSDBStats(**vars(self._stats))
            snap.samples_rejected = dict(self._stats.samples_rejected)
            snap.series_rejected = dict(self._stats.series_rejected)
            snap.head_series = len(self._index)
            snap.head_samples = sum(s.n for s in self._index.all())
            snap.wal_fsyncs = self._wal.fsyncs
        snap.chunk_cache_hits = self._decoded.hits
        snap.chunk_cache_misses = self._decoded.misses
        snap.chunk_cache_bytes = self._decoded.size_bytes
        return snap

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """fsync the WAL and release the data directory (idempotent)."""
        with self._maintenance_lock, self._lock:
            if self._closed:
                return
            self._closed = True
            self._wal.close()
            self._store.close()
            self._decoded.clear()
            if self._registry is not None and self._collector is not None:
                with contextlib.suppress(KeyError):
                    self._registry.unregister(self._collector)
            os.close(self._lock_fd)

    def __enter__(self) -> TSDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TSDBAppender:
    """One batch for :class:`TSDB`; reusable after :meth:`commit` or :meth:`rollback`.

    A refused sample (out of order, a different value at the same timestamp,
    older than retention, a new series over a limit) never costs the batch its
    other samples. It is counted in the metrics and listed in :attr:`rejected`
    after the commit; with ``strict=True``, :meth:`append` raises the
    :class:`~soulwatch.exceptions.StorageError` subclass for it instead.
    Conflicts only visible at commit time (another batch committed the same
    series first) are always listed, never raised.
    """

    def __init__(self, db: TSDB, source: str, *, strict: bool = False) -> None:
        self._db = db
        self._source = source
        self._strict = strict
        self._series: list[HeadSeries] = []
        self._ts: array[int] = array("q")
        self._vals: array[float] = array("d")
        self._new: dict[Labels, HeadSeries] = {}
        self._last: dict[HeadSeries, int] = {}  # newest time per series within this batch
        self._lookup = db._index.get
        self._by_id = db._index.by_id_get
        self._generation = db._generation
        self._min_t = db._cutoff_ms()
        self._refused: list[RejectedSample] = []  # this batch's, so far
        self._unindexed = False  # samples taken by append_batch are not in _last yet
        #: The samples the last :meth:`commit` (or :meth:`rollback`) did not store, and why.
        self.rejected: list[RejectedSample] = []

    def append(self, labels: Labels, t_ms: int, value: float) -> None:
        """Buffer one sample (``strict``: raise if it is refused)."""
        self._add(self._lookup(labels) or self._new.get(labels), labels, t_ms, value)

    def append_ref(self, ref: int, labels: Labels, t_ms: int, value: float) -> int:
        """Like :meth:`append`, skipping the label lookup when ``ref`` is still valid.

        ``ref`` is what the previous call for the same ``labels`` returned (0 the
        first time): the series id. A caller appending the same series every
        scrape keeps it, so the hot path looks up an int instead of hashing and
        comparing the label set. A stale ref (series removed by retention, a
        series not yet committed) falls back to the lookup. Returns the ref to
        pass next time (0 while the series is not committed, or refused).
        """
        series = self._by_id(ref)
        if series is None:
            series = self._lookup(labels) or self._new.get(labels)
        return self._add(series, labels, t_ms, value)

    def append_batch(
        self, refs: Sequence[int], labels: Sequence[Labels], t_ms: int, values: Sequence[float]
    ) -> list[int]:
        """Append ``values[i]`` for ``labels[i]`` at ``t_ms``; each series at most once.

        The same outcome as :meth:`append_ref` for each sample in order (what is
        stored, refused, counted; the refs returned). When the batch is the
        first of the appender, every ref is valid and every series older than
        ``t_ms`` (a scrape target in steady state), the samples are taken in a
        few whole-list steps; otherwise sample by sample.
        """
        if len(refs) != len(labels) or len(refs) != len(values):
            raise ValueError("append_batch needs as many refs and labels as values")
        series = list(map(self._by_id, refs))
        if (
            self._series
            or not series
            or None in series
            or t_ms < self._min_t
            or max(map(_LAST_T, series)) >= t_ms
        ):
            append_ref = self.append_ref
            return [
                append_ref(ref, lab, t_ms, v)
                for ref, lab, v in zip(refs, labels, values, strict=True)
            ]
        # No sample of this appender yet, so none to clash with in the batch; the
        # batch's own times are indexed for later appends only if one comes.
        self._series = series  # type: ignore[assignment]  # no None: checked above
        self._ts = array("q", (t_ms,)) * len(series)
        self._vals = array("d", values)
        self._unindexed = True
        return list(refs)

    def _add(self, series: HeadSeries | None, labels: Labels, t_ms: int, value: float) -> int:
        if self._unindexed:
            self._last.update(zip(self._series, self._ts, strict=True))
            self._unindexed = False
        if series is None:
            try:
                self._db._check_limits(labels, t_ms, self._source, len(self._new))
            except SeriesLimitExceededError as exc:
                self._refuse(exc, value)
                return 0
            series = HeadSeries(0, labels, self._source)
            self._new[labels] = series
        prev = self._last.get(series)
        if prev is None:
            if t_ms <= series.last_t:
                self._out_of_order(labels, t_ms, value, series.last_t, series.last_v)
                return series.id
        elif t_ms <= prev:
            self._out_of_order(labels, t_ms, value, prev, self._value_at(series, prev))
            return series.id
        if t_ms < self._min_t:
            self._db._count_rejected(RejectReason.TOO_OLD)
            self._refuse(
                SampleTooOldError(
                    f"timestamp {t_ms} is older than the retention window (from {self._min_t})",
                    labels=labels,
                    t_ms=t_ms,
                ),
                value,
            )
            return series.id
        # Only the time is kept per series: a tuple with the value would be an
        # object per sample; the value is found again in the (rare) duplicate case.
        self._last[series] = t_ms
        self._series.append(series)
        self._ts.append(t_ms)
        self._vals.append(value)
        return series.id

    def _value_at(self, series: HeadSeries, t_ms: int) -> float:
        # The batch's value of ``series`` at ``t_ms`` (its newest in the batch).
        for i in range(len(self._series) - 1, -1, -1):
            if self._series[i] is series and self._ts[i] == t_ms:
                return self._vals[i]
        raise AssertionError("a batch's last time always has its sample")  # pragma: no cover

    def _out_of_order(
        self, labels: Labels, t_ms: int, value: float, last_t: int, last_v: float
    ) -> None:
        if t_ms == last_t and _same_value(value, last_v):
            return  # the same sample again (a retried batch): nothing to do
        error: SampleRejectedError
        if t_ms == last_t:
            error = DuplicateSampleError(
                f"a different value is already stored at {t_ms}", labels=labels, t_ms=t_ms
            )
        else:
            error = OutOfOrderSampleError(
                f"timestamp {t_ms} is older than the newest sample ({last_t})",
                labels=labels,
                t_ms=t_ms,
            )
        self._db._count_rejected(error.reason)
        self._refuse(error, value)

    def _refuse(self, error: SampleRejectedError | SeriesLimitExceededError, value: float) -> None:
        if self._strict:
            raise error
        self._refused.append(RejectedSample(error.labels, error.t_ms, value, error.reason))

    def commit(self) -> None:
        """Store the batch: visible to readers and in the WAL when this returns."""
        try:
            self._db._commit(self)
        finally:
            self._clear()

    def rollback(self) -> None:
        """Discard the batch."""
        self._clear()

    def _clear(self) -> None:
        self.rejected = self._refused
        self._refused = []
        self._series = []
        self._ts = array("q")
        self._vals = array("d")
        self._new = {}
        self._last = {}
        self._unindexed = False
        self._generation = self._db._generation
        self._min_t = self._db._cutoff_ms()

    def __len__(self) -> int:
        return len(self._ts)


async def run_maintenance(db: TSDB, clock: Clock, interval: float = 60.0) -> None:
    """Call :meth:`TSDB.maintain` every ``interval`` seconds of ``clock`` in a worker thread.

    Runs until cancelled. A failing round is counted (``compaction_failures``) and
    retried at the next tick; nothing in the head is lost by a failed round.
    """
    while True:
        await clock.sleep(interval)
        with contextlib.suppress(StorageError):
            await asyncio.to_thread(db.maintain)
