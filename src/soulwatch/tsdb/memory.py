"""An in-memory :class:`~soulwatch.tsdb.storage.Storage`, for tests and scripts.

Samples of a series are kept sorted by time; appending a sample at an existing
timestamp replaces it. Nothing is persisted.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from soulwatch.tsdb.model import Labels, Matcher, Series, matches_all, names_of, values_of


class MemoryStorage:
    """A dict of series held in memory."""

    def __init__(self) -> None:
        self._series: dict[Labels, Series] = {}

    def appender(self, source: str = "") -> _MemoryAppender:
        """A batch that lands on commit (``source`` is not limited here)."""
        return _MemoryAppender(self)

    def add(self, labels: Labels, t_ms: int, value: float) -> None:
        """Append one sample immediately."""
        series = self._series.get(labels)
        if series is None:
            series = self._series[labels] = Series(labels)
        ts = series.timestamps
        if not ts or t_ms > ts[-1]:
            ts.append(t_ms)
            series.values.append(value)
            return
        i = bisect.bisect_left(ts, t_ms)
        if i < len(ts) and ts[i] == t_ms:
            series.values[i] = value
        else:
            ts.insert(i, t_ms)
            series.values.insert(i, value)

    def clear(self) -> None:
        """Drop every series."""
        self._series.clear()

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """Matching series with their samples in ``[mint_ms, maxt_ms]``."""
        for labels in sorted(self._series):
            if not matches_all(matchers, labels):
                continue
            full = self._series[labels]
            lo = bisect.bisect_left(full.timestamps, mint_ms)
            hi = bisect.bisect_right(full.timestamps, maxt_ms)
            if lo < hi:
                yield Series(labels, full.timestamps[lo:hi], full.values[lo:hi])

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Label sets of matching series with samples in the range."""
        return [s.labels for s in self.select(matchers, mint_ms, maxt_ms)]

    def _matching(
        self, matchers: Sequence[Matcher], mint_ms: int | None, maxt_ms: int | None
    ) -> list[Labels]:
        if mint_ms is None and maxt_ms is None:
            return [lbls for lbls in self._series if matches_all(matchers, lbls)]
        lo = mint_ms if mint_ms is not None else -(2**62)
        hi = maxt_ms if maxt_ms is not None else 2**62
        return self.series(matchers, lo, hi)

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted label names."""
        return names_of(self._matching(matchers, mint_ms, maxt_ms))

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name``."""
        return values_of(name, self._matching(matchers, mint_ms, maxt_ms))


class _MemoryAppender:
    def __init__(self, storage: MemoryStorage) -> None:
        self._storage = storage
        self._pending: list[tuple[Labels, int, float]] = []

    def append(self, labels: Labels, t_ms: int, value: float) -> None:
        self._pending.append((labels, t_ms, value))

    def commit(self) -> None:
        for labels, t_ms, value in self._pending:
            self._storage.add(labels, t_ms, value)
        self._pending.clear()

    def rollback(self) -> None:
        self._pending.clear()
