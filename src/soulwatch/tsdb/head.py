"""The in-memory head: every known series, its recent samples, and the postings index.

A series keeps its not-yet-persisted samples in two compact buffers
(``array('i')`` time offsets, ``array('d')`` values: 12 bytes a sample, no
Python object per sample) that are never resized in place, so a selection
reads them through views instead of copies (see :class:`HeadSeries`). The
postings index maps ``label name -> label value -> series ids`` so a
matcher is resolved over the values of one label, never by scanning every
series. Ids are handed out in increasing order, so
each postings array stays sorted as it grows.

The head holds no lock of its own: :class:`soulwatch.tsdb.db.TSDB` guards it.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import sys
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence

from soulwatch.tsdb.model import Labels, Matcher, MatchType

try:
    import numpy as np
except ImportError:  # pragma: no cover - numpy ships with the monitor extra
    np = None  # type: ignore[assignment]

#: Postings lookups go through numpy (one call for every candidate id) when it is installed.
_BATCH_LOOKUP: bool = np is not None

#: No sample yet (smaller than any real timestamp).
NO_TIME = -(2**63)


def absolute_times(runs: Sequence[tuple[array[int], int]]) -> list[array[int]]:
    """Each ``(offsets, base)`` as an ``array('q')`` of absolute times (ms): ``base + offsets``.

    With numpy, every run is widened in one pass over one joined buffer and
    then cut back into runs, not one Python int (or one numpy call) per
    sample; each ``offsets`` must be a private copy.
    """
    narrow = [offsets for offsets, _ in runs if offsets.typecode == "i"]
    if np is None or len(narrow) != len(runs) or not runs:
        return [widened(o, base) for o, base in runs]
    lengths = np.fromiter(map(len, narrow), dtype=np.int64, count=len(narrow))
    bases = np.fromiter((base for _, base in runs), dtype=np.int64, count=len(runs))
    offsets = np.frombuffer(b"".join(narrow), dtype=np.dtype(f"i{narrow[0].itemsize}"))
    wide = offsets.astype(np.int64) + np.repeat(bases, lengths)
    joined = array("q")
    joined.frombytes(wide.tobytes())
    out = []
    start = 0
    for n in lengths.tolist():
        out.append(joined[start : start + n])
        start += n
    return out


def widened(offsets: array[int], base: int) -> array[int]:
    """``base + offsets`` as an ``array('q')`` of absolute times (ms)."""
    return array("q", map(base.__add__, offsets) if base else offsets)


#: The capacity a series' buffers start with; a full buffer is copied into one half again as large.
FIRST_CAPACITY = 16
#: The least capacity of what is left after the oldest samples are cut into a chunk.
AFTER_CUT_CAPACITY = 40

_FIRST_TIMES: array[int] = array("i", bytes(4 * FIRST_CAPACITY))
_FIRST_VALUES: array[float] = array("d", bytes(8 * FIRST_CAPACITY))


#: Paddings up to this many slots are kept (at most about 1 MiB in all): every
#: series grows through the same few sizes; a larger one is built each time.
_CACHED_PADDING = 256


def _new_padding(k: int) -> tuple[array[int], array[int], array[float]]:
    """``k`` free slots for each kind of buffer (``'i'`` and ``'q'`` times, values)."""
    return array("i", bytes(4 * k)), array("q", bytes(8 * k)), array("d", bytes(8 * k))


_cached_padding = functools.lru_cache(maxsize=_CACHED_PADDING)(_new_padding)


def _padding(k: int) -> tuple[array[int], array[int], array[float]]:
    """As :func:`_new_padding`, shared for small ``k`` (never written: only concatenated)."""
    return _cached_padding(k) if k <= _CACHED_PADDING else _new_padding(k)


# The buffers of a series with no head sample: capacity 0, so the first
# append takes the slow path (which gives the series buffers of its own).
# Shared by every such series and never written.
_NO_TIMES: array[int] = array("i")
_NO_VALUES: array[float] = array("d")


class HeadSeries:
    """One series: identity, limits bookkeeping and the samples not yet in a chunk.

    The head samples live in two buffers of fixed capacity (``ts``, ``vals``),
    the first ``n`` slots filled; an append writes slot ``n``. A buffer is
    never resized, shifted or rewritten below ``n``: when it is full its
    samples are copied into fresh buffers half again as large, and when
    compaction or retention drops the oldest samples, what is left is copied
    into fresh buffers too. A selection can therefore hand out read-only
    views of the buffers, up to the length it saw, without copying: the
    samples it sees never change, and an append never finds its buffer
    pinned (the ``BufferError`` a growing ``array`` raises once a view of it
    exists). A buffer a view still holds is freed with the view.

    Timestamps are stored as 32-bit offsets from ``base`` (12 bytes a sample
    with the value, instead of 16): a sample's time is ``base + ts[i]``. The
    head is cut at least every ``head_max_age``, so offsets stay small; if a
    run ever spans more than 24 days the offsets are widened to 64-bit
    absolute times (``base`` 0), in fresh buffers, rather than failing.
    """

    __slots__ = (
        "base",
        "first_t",
        "id",
        "labels",
        "last_t",
        "last_v",
        "n",
        "persisted_maxt",
        "source",
        "ts",
        "vals",
    )

    def __init__(self, series_id: int, labels: Labels, source: str) -> None:
        self.id = series_id
        self.labels = labels
        self.source = source
        self.base = 0  # set by the first append to an empty head
        self.ts: array[int] = _NO_TIMES
        self.vals: array[float] = _NO_VALUES
        self.n = 0  # filled slots of ts and vals: the head samples
        self.first_t = NO_TIME  # the oldest sample anywhere (head or chunks)
        self.last_t = NO_TIME  # the newest sample ever accepted
        self.last_v = 0.0
        self.persisted_maxt = NO_TIME  # the newest sample already in a chunk

    def has_data(self) -> bool:
        """True if any sample of the series is kept (head or chunks)."""
        return self.first_t != NO_TIME

    def append_slow(self, t: int, v: float) -> None:
        """Append after ``ts[n] = t - base`` failed: buffers full or empty, or a wide offset."""
        n = self.n
        if not n:
            self.base = t
            if not self.ts:
                self.ts = _FIRST_TIMES[:]
                self.vals = _FIRST_VALUES[:]
        elif n == len(self.ts):
            # Fresh buffers half again as large (the old ones may be viewed by a
            # query, so they are left as they are): one C call each.
            pad = _padding(max(FIRST_CAPACITY, n >> 1))
            self.ts = self.ts + (pad[0] if self.ts.typecode == "i" else pad[1])
            self.vals = self.vals + pad[2]
        try:
            self.ts[n] = t - self.base
        except OverflowError:
            wide = array("q", map(self.base.__add__, self.ts[:n]))
            wide.frombytes(bytes(8 * (len(self.ts) - n)))
            self.ts = wide
            self.base = 0
            self.ts[n] = t
        self.vals[n] = v
        self.n = n + 1

    def add(self, t: int, v: float) -> None:
        """Append one sample known to be newer than ``last_t``."""
        n = self.n
        try:
            self.ts[n] = t - self.base
        except (IndexError, OverflowError):
            self.append_slow(t, v)
        else:
            self.vals[n] = v
            self.n = n + 1
        self.last_t = t
        self.last_v = v
        if self.first_t == NO_TIME:
            self.first_t = t

    def time_at(self, i: int) -> int:
        """The absolute time of head sample ``i``."""
        return self.base + self.ts[i]

    def index_of(self, t: int, *, right: bool = False) -> int:
        """Where ``t`` falls among the head samples (``bisect_left`` / ``bisect_right``)."""
        if right:
            return bisect.bisect_right(self.ts, t - self.base, 0, self.n)
        return bisect.bisect_left(self.ts, t - self.base, 0, self.n)

    def times(self, lo: int = 0, hi: int | None = None) -> list[int]:
        """Absolute times of head samples ``lo:hi``."""
        window = self.ts[lo : self.n if hi is None else min(hi, self.n)]
        if not self.base:
            return window.tolist()
        return list(map(self.base.__add__, window))

    def values(self, lo: int = 0, hi: int | None = None) -> array[float]:
        """Values of head samples ``lo:hi`` (a copy)."""
        return self.vals[lo : self.n if hi is None else min(hi, self.n)]

    def drop(self, k: int) -> None:
        """Remove the ``k`` oldest head samples and re-base the rest on the first left.

        What is left is copied into fresh buffers (sized for it and as much
        again), so no buffer a query may hold changes.
        """
        n = self.n
        if k >= n:
            self.ts, self.vals, self.n, self.base = _NO_TIMES, _NO_VALUES, 0, 0
            return
        left = n - k
        first = self.ts[k]
        if first or self.ts.typecode != "i":
            shifted = [x - first for x in self.ts[k:n]]
            try:
                ts = array("i", shifted)
            except OverflowError:
                ts = array("q", shifted)
            self.base += first
        else:
            ts = self.ts[k:n]
        # Room for what is left and as much again, and at least a third of a
        # default chunk: a chunk then fills in three or four copies.
        capacity = max(AFTER_CUT_CAPACITY, 2 * left)
        ts.frombytes(bytes(ts.itemsize * (capacity - left)))
        vals = self.vals[k:n]
        vals.frombytes(bytes(8 * (capacity - left)))
        self.ts, self.vals, self.n = ts, vals, left

    def window(self, mint: int, maxt: int) -> tuple[array[int], int, memoryview]:
        """The head samples in ``[mint, maxt]``: ``(offsets, base, values)``.

        ``values`` is a read-only view of the head's own buffer, no copy, valid
        for as long as it is held whatever is appended or dropped meanwhile.
        ``offsets`` (from ``base``) are a copy: 4 bytes a sample that the
        caller widens into absolute times anyway, and one slice costs less than
        a view.
        """
        ts, base, n = self.ts, self.base, self.n
        lo = bisect.bisect_left(ts, mint - base, 0, n) if self.first_t < mint else 0
        # Instant queries at "now" take every head sample up to the last.
        hi = bisect.bisect_right(ts, maxt - base, lo, n) if self.last_t > maxt else n
        return ts[lo:hi], base, memoryview(self.vals)[lo:hi].toreadonly()


class _Posting:
    """The series ids having one label pair (sorted), and the shared pair tuple."""

    __slots__ = ("ids", "pair")

    def __init__(self, pair: tuple[str, str], first_id: int) -> None:
        self.pair = pair
        self.ids: array[int] = array("q", [first_id])


class HeadIndex:
    """Series by id and by labels, per-source counts, and the postings index."""

    def __init__(self) -> None:
        self._by_id: dict[int, HeadSeries] = {}
        self._by_labels: dict[Labels, HeadSeries] = {}
        self._postings: dict[str, dict[str, _Posting]] = {}
        self._per_source: dict[str, int] = {}
        self.next_id = 1

        # The series with exactly these labels, if known (the bound dict method:
        # this is on every append's path).
        self.get: Callable[[Labels], HeadSeries | None] = self._by_labels.get
        # The series with this id, if known (``by_id`` without a method call: the
        # appenders' series-reference fast path).
        self.by_id_get: Callable[[int], HeadSeries | None] = self._by_id.get

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, series_id: int) -> HeadSeries | None:
        """The series with this id, if known."""
        return self._by_id.get(series_id)

    def all(self) -> Iterable[HeadSeries]:
        """Every series (unordered)."""
        return self._by_id.values()

    def source_count(self, source: str) -> int:
        """How many series ``source`` created."""
        return self._per_source.get(source, 0)

    def add(self, labels: Labels, source: str, series_id: int | None = None) -> HeadSeries:
        """Register a new series (a fresh id unless one is given, as on replay)."""
        if series_id is None:
            series_id = self.next_id
        self.next_id = max(self.next_id, series_id + 1)
        # Label pairs repeat across series (job="api" in thousands): the postings
        # entry keeps one tuple per pair, and every series' labels share it.
        pairs = []
        for name, value in labels:
            values = self._postings.get(name)
            if values is None:
                values = self._postings[sys.intern(name)] = {}
            posting = values.get(value)
            if posting is None:
                posting = values[value] = _Posting((sys.intern(name), value), series_id)
            elif posting.ids[-1] < series_id:
                posting.ids.append(series_id)
            else:  # replay may add ids out of order
                posting.ids.append(series_id)
                posting.ids = array("q", sorted(posting.ids))
            pairs.append(posting.pair)
        # The pairs come from a Labels, so already sorted and non-empty; skip the
        # constructor, which would copy every pair tuple.
        shared = tuple.__new__(Labels, pairs)
        series = HeadSeries(series_id, shared, sys.intern(source))
        self._by_id[series_id] = series
        self._by_labels[shared] = series
        self._per_source[series.source] = self._per_source.get(series.source, 0) + 1
        return series

    def remove(self, dead: Sequence[HeadSeries]) -> None:
        """Forget series that hold no data any more (after retention)."""
        if not dead:
            return
        gone = {s.id for s in dead}
        for series in dead:
            del self._by_id[series.id]
            del self._by_labels[series.labels]
            left = self._per_source[series.source] - 1
            if left:
                self._per_source[series.source] = left
            else:
                del self._per_source[series.source]
            for name, value in series.labels:
                values = self._postings[name]
                posting = values.get(value)
                if posting is None:
                    continue
                kept = array("q", (i for i in posting.ids if i not in gone))
                if kept:
                    posting.ids = kept
                else:
                    del values[value]
                    if not values:
                        del self._postings[name]

    def label_names(self) -> list[str]:
        """Every label name in use, sorted."""
        return sorted(self._postings)

    def label_values(self, name: str) -> list[str]:
        """Every value of label ``name`` in use, sorted."""
        return sorted(self._postings.get(name, {}))

    def matching(self, matchers: Sequence[Matcher]) -> Iterator[HeadSeries]:
        """Series satisfying every matcher, resolved through the postings index."""
        # Matchers that reject "" narrow by union of postings; they go first,
        # smallest first, so a selective matcher (route="/x") keeps the id set
        # small and a broad one (__name__ over 10k series) only filters it.
        narrowing: list[tuple[int, list[array[int]]]] = []
        widening: list[tuple[Matcher, dict[str, _Posting]]] = []
        for matcher in matchers:
            values = self._postings.get(matcher.name, {})
            if matcher.matches(""):
                widening.append((matcher, values))
                continue
            arrays = list(_candidates(matcher, values))
            if not arrays:
                return iter(())
            narrowing.append((sum(map(len, arrays)), arrays))
        narrowing.sort(key=lambda item: item[0])
        ids: set[int] | None = None
        for size, arrays in narrowing:
            if ids is None:
                ids = set(arrays[0])
                for more in arrays[1:]:
                    ids.update(more)
            elif _BATCH_LOOKUP or len(ids) * 16 < size:
                # Look each id left up in the sorted postings (with numpy, all
                # at once) instead of building a set of all of them.
                ids = _present(ids, arrays)
            else:
                ids = ids.intersection(itertools.chain.from_iterable(arrays))
            if not ids:
                return iter(())
        for matcher, values in widening:
            # Also true for series without the label: subtract the values it rejects.
            if ids is None:
                ids = set(self._by_id)
            for value, posting in values.items():
                if not matcher.matches(value):
                    ids.difference_update(posting.ids)
            if not ids:
                return iter(())
        if ids is None:
            ids = set(self._by_id)
        # Resolved now (the caller holds the lock), handed out without a Python step per id.
        return map(self._by_id.__getitem__, ids)


def _present(ids: set[int], arrays: list[array[int]]) -> set[int]:
    """The ``ids`` found in any of the sorted postings ``arrays``.

    With numpy, one ``searchsorted`` per postings array finds every id at
    once (no Python call per id); each array is copied so the postings can
    still grow (an exported buffer would pin them).
    """
    if np is None or not ids:
        return {i for i in ids if any(_has(found, i) for found in arrays)}
    wanted = np.fromiter(ids, dtype=np.int64, count=len(ids))
    keep = np.zeros(len(wanted), dtype=np.bool_)
    for found in arrays:
        if not found:
            continue
        posting = np.array(found, dtype=np.int64)
        at = np.searchsorted(posting, wanted)
        np.minimum(at, len(posting) - 1, out=at)
        keep |= posting[at] == wanted
    return set(wanted[keep].tolist())


def _has(ids: array[int], series_id: int) -> bool:
    """Whether the sorted postings ``ids`` hold ``series_id``."""
    k = bisect.bisect_left(ids, series_id)
    return k < len(ids) and ids[k] == series_id


def _candidates(matcher: Matcher, values: dict[str, _Posting]) -> Iterator[array[int]]:
    if matcher.type is MatchType.EQUAL:
        posting = values.get(matcher.value)
        if posting is not None:
            yield posting.ids
        return
    for value, posting in values.items():
        if matcher.matches(value):
            yield posting.ids
