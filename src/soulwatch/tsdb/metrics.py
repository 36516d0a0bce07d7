"""The TSDB's own metrics, as a prometheus_client collector (registered only when a
registry is passed to :class:`~soulwatch.tsdb.db.TSDB`; nothing global at import)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from soulwatch.tsdb.errors import RejectReason

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from soulwatch.tsdb.db import TSDB


class TSDBCollector(Collector):
    """Exports ``soulwatch_tsdb_*`` counters and gauges from :meth:`TSDB.stats`."""

    def __init__(self, db: TSDB) -> None:
        self._db = db

    def collect(self) -> Iterator[Metric]:
        """One consistent snapshot per scrape."""
        stats = self._db.stats()
        replay = self._db.replay

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"soulwatch_tsdb_{name}", doc, value=value)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"soulwatch_tsdb_{name}", doc, value=value)

        yield counter("samples_appended", "Samples committed to the head.", stats.samples_appended)
        rejected = CounterMetricFamily(
            "soulwatch_tsdb_samples_rejected",
            "Samples refused, by reason.",
            labels=["reason"],
        )
        for reason in RejectReason:
            rejected.add_metric([reason.value], stats.samples_rejected.get(reason, 0))
        yield rejected
        yield counter(
            "duplicate_samples_ignored",
            "Samples identical to the stored one at the same timestamp (ignored).",
            stats.duplicates_ignored,
        )
        series_rejected = CounterMetricFamily(
            "soulwatch_tsdb_series_rejected",
            "New series refused by a series limit, by limit.",
            labels=["limit"],
        )
        for limit in ("total", "per_source"):
            series_rejected.add_metric([limit], stats.series_rejected.get(limit, 0))
        yield series_rejected
        yield counter("series_created", "Series created.", stats.series_created)
        yield counter("commits", "Appender commits.", stats.commits)
        yield counter("chunks_written", "Chunks written to SQLite.", stats.chunks_written)
        yield counter(
            "samples_persisted", "Samples moved from the head into chunks.", stats.samples_persisted
        )
        yield counter("compactions", "Head compactions.", stats.compactions)
        yield counter("compaction_failures", "Compactions that failed.", stats.compaction_failures)
        yield counter(
            "retention_chunks_deleted",
            "Chunks deleted by time or size retention.",
            stats.retention_chunks_deleted,
        )
        yield counter("series_removed", "Series forgotten after retention.", stats.series_removed)
        yield counter("wal_segments_deleted", "WAL segments deleted.", stats.wal_segments_deleted)
        yield counter("wal_fsyncs", "WAL fsync calls.", stats.wal_fsyncs)
        yield gauge("head_series", "Series known to the head.", stats.head_series)
        yield gauge("head_samples", "Samples in the head not yet in chunks.", stats.head_samples)
        yield counter(
            "chunk_cache_hits",
            "Chunks a query read already decoded (the decoded-chunk cache).",
            stats.chunk_cache_hits,
        )
        yield counter(
            "chunk_cache_misses", "Chunks a query had to decode.", stats.chunk_cache_misses
        )
        yield gauge(
            "chunk_cache_bytes", "Bytes held by the decoded-chunk cache.", stats.chunk_cache_bytes
        )
        yield gauge("storage_bytes", "Bytes on disk (SQLite and WAL).", self._db.size_bytes())
        yield gauge(
            "wal_replayed_samples",
            "Samples recovered from the WAL at open.",
            replay.samples_replayed,
        )
        yield gauge(
            "wal_truncated_bytes",
            "Bytes of a torn or corrupt WAL tail cut off at open.",
            replay.truncated_bytes,
        )
