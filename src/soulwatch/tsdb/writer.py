"""One writer of generated series: rule results, ``ALERTS``, heartbeats, probes, collectors.

Every part of the monitor that computes its samples (rather than scraping
them) writes them the same way: a batch per run, and Prometheus's staleness
marker for each series written last time and absent now, so queries stop
returning a vanished series at once instead of for the lookback delta.
:meth:`SeriesWriter.close` ends every series (a removed rule, a stopped
probe).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from soulwatch.exceptions import SoulwatchError, StorageError
from soulwatch.tsdb.model import STALE_NAN, Labels
from soulwatch.tsdb.storage import Appender, Storage


def open_appender(storage: Storage, source: str) -> Appender:
    """An appender of ``storage`` for ``source`` (the TSDB bounds each source's series)."""
    return storage.appender(source=source)


def append_quietly(app: Appender, labels: Labels, t_ms: int, value: float) -> bool:
    """Append one sample; a refusal (series limit, out of order) skips only that sample.

    The storage counts its own rejections; the other samples of the run go on.
    """
    try:
        app.append(labels, t_ms, value)
    except StorageError:
        return False
    return True


class SeriesWriter:
    """Writes one writer's samples and marks the series it stops writing stale.

    ``source`` names the writer to the storage (its per-source series limit;
    ``""`` for none) and in errors. ``strict``: a refused sample fails the
    whole batch (a rule's result is all or nothing); otherwise only that
    sample is skipped (a probe's other samples still land).
    """

    def __init__(
        self,
        storage: Storage,
        source: str = "",
        *,
        lock: threading.Lock | None = None,
        strict: bool = False,
        name: str = "",
    ) -> None:
        self._storage = storage
        self._source = source
        self._name = name or f"the series of {source or 'a writer'}"
        self._lock = lock or threading.Lock()
        self._strict = strict
        self._previous: frozenset[Labels] = frozenset()
        self._last_t_ms: int | None = None

    @property
    def written(self) -> frozenset[Labels]:
        """The series of the last write (what :meth:`close` would end)."""
        return self._previous

    def write(self, t_ms: int, samples: Mapping[Labels, float]) -> None:
        """Append ``samples`` at ``t_ms`` and staleness markers for vanished series."""
        with self._lock:
            app = open_appender(self._storage, self._source)
            try:
                for labels, value in samples.items():
                    self._append(app, labels, t_ms, value)
                for gone in self._previous - samples.keys():
                    self._append(app, gone, t_ms, STALE_NAN)
                app.commit()
            except SoulwatchError:
                app.rollback()
                raise
            except Exception as exc:  # a storage backend's own error
                app.rollback()
                raise StorageError(f"cannot write {self._name}: {exc}") from exc
        self._previous = frozenset(samples)
        self._last_t_ms = t_ms

    def close(self, t_ms: int) -> None:
        """Mark every series written last stale (at ``t_ms``, after the last write)."""
        if self._last_t_ms is None or not self._previous:
            return
        self.write(max(t_ms, self._last_t_ms + 1), {})

    def _append(self, app: Appender, labels: Labels, t_ms: int, value: float) -> None:
        if self._strict:
            app.append(labels, t_ms, value)
        else:
            append_quietly(app, labels, t_ms, value)
