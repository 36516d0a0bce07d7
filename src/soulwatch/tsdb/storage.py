"""The storage interface: what the PromQL engine, rules and API read and write.

The embedded TSDB implements it; so does :class:`soulwatch.tsdb.memory.MemoryStorage`
for tests, and a remote (Prometheus remote write/read) implementation can.
Calls are synchronous; the service runs them off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from soulwatch.tsdb.model import ArraySeries, Labels, Matcher, Series

if TYPE_CHECKING:
    from soulwatch.tsdb.db import SeriesBatch


@runtime_checkable
class Appender(Protocol):
    """A batch of samples, made visible to readers on :meth:`commit`."""

    def append(self, labels: Labels, t_ms: int, value: float) -> None:
        """Add one sample (``value`` may be the staleness marker)."""
        ...

    def commit(self) -> None:
        """Make the batch durable (per the storage's guarantee) and visible."""
        ...

    def rollback(self) -> None:
        """Discard the batch."""
        ...


@runtime_checkable
class RefAppender(Appender, Protocol):
    """An appender with a series-reference fast path (the embedded TSDB's).

    A writer that appends the same series again and again (a scrape target)
    keeps the int each call returns and passes it back with the same labels,
    which spares the storage a label-set lookup per sample. A ref means
    something only to the storage object that returned it.
    """

    def append_ref(self, ref: int, labels: Labels, t_ms: int, value: float) -> int:
        """Add one sample; ``ref`` is the previous call's return for ``labels`` (0 at first)."""
        ...


@runtime_checkable
class BatchAppender(RefAppender, Protocol):
    """An appender that takes a whole scrape's samples in one call (the embedded TSDB's).

    A scrape target in steady state knows its series and their refs; it hands
    over one value per series, all at one timestamp, so the storage can take
    the batch with a few whole-list operations instead of a call per sample.
    """

    def append_batch(
        self, refs: Sequence[int], labels: Sequence[Labels], t_ms: int, values: Sequence[float]
    ) -> list[int]:
        """Append ``values[i]`` for series ``labels[i]`` at ``t_ms``; each series at most once.

        Stores and refuses exactly what :meth:`RefAppender.append_ref` called
        for each ``i`` in order would; ``refs`` are those calls' refs and the
        result is what they would return.
        """
        ...


@runtime_checkable
class SeriesIndex(Protocol):
    """Which series and label values exist: what series and label pickers list.

    Every :class:`Storage` is one; in ruler mode the remote store's API is
    (:class:`soulwatch.remote.query.RemoteMetadata`).
    """

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Label sets of the series matching ``matchers`` that have samples in the range."""
        ...

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted label names, of the series matching ``matchers`` if any are given."""
        ...

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Sorted values of label ``name``, of the series matching ``matchers`` if given."""
        ...


@runtime_checkable
class Storage(SeriesIndex, Protocol):
    """Append samples; select series by label matchers over a time range."""

    def appender(self, source: str = "") -> Appender:
        """A new appender for one batch (one scrape, one rule evaluation).

        ``source`` names the writer (``job/instance``); a storage may use it
        to bound the series one source creates, or ignore it.
        """
        ...

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """Series matching every matcher with their samples in ``[mint_ms, maxt_ms]``.

        Series with no sample in the range are not returned. Order is by labels.
        """
        ...


@runtime_checkable
class ArrayStorage(Storage, Protocol):
    """A storage that can hand out samples as arrays (the embedded TSDB).

    The PromQL engine prefers :meth:`select_arrays` when a storage has it.
    """

    def select_arrays(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> Iterator[ArraySeries]:
        """As :meth:`Storage.select`, with the samples in compact arrays."""
        ...


@runtime_checkable
class BatchStorage(ArrayStorage, Protocol):
    """A storage that can hand a selection out as one batch of series (the embedded TSDB).

    The PromQL engine's range functions read :meth:`select_batch` first and
    fall back to :meth:`select_arrays` when it answers ``None``.
    """

    def select_batch(
        self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int
    ) -> SeriesBatch | None:
        """As :meth:`ArrayStorage.select_arrays`, end to end in one batch, or ``None``."""
        ...
