"""Remote write's own metrics, under Prometheus's names so its dashboards and alerts apply.

Per queue the labels are ``remote_name`` and ``url`` (credentials removed),
as Prometheus labels them; ``prometheus_remote_storage_highest_timestamp_in_seconds``
has none. Lag is ``highest_timestamp_in_seconds -
queue_highest_sent_timestamp_seconds``, the usual alert expression.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_Q = ["remote_name", "url"]


class RemoteMetrics:
    """Every remote write metric family, registered once in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        r = registry
        p = "prometheus_remote_storage_"
        self.samples = Counter(p + "samples", "Samples sent to remote storage.", _Q, registry=r)
        self.failed = Counter(
            p + "samples_failed",
            "Samples that failed on send and were not retried (a 4xx answer).",
            _Q,
            registry=r,
        )
        self.retried = Counter(
            p + "samples_retried", "Samples sent again after a recoverable error.", _Q, registry=r
        )
        self.dropped = Counter(
            p + "samples_dropped",
            "Samples not sent: dropped by write_relabel_configs or without labels.",
            _Q,
            registry=r,
        )
        self.samples_in = Counter(
            p + "samples_in", "Samples read from the WAL into the queue.", _Q, registry=r
        )
        self.pending = Gauge(
            p + "samples_pending", "Samples read and not yet acknowledged.", _Q, registry=r
        )
        self.bytes = Counter(p + "bytes", "Compressed bytes of sent requests.", _Q, registry=r)
        self.highest_sent = Gauge(
            p + "queue_highest_sent_timestamp_seconds",
            "Newest sample timestamp the receiver acknowledged.",
            _Q,
            registry=r,
        )
        self.highest_in = Gauge(
            p + "highest_timestamp_in_seconds",
            "Newest sample timestamp read from the WAL.",
            registry=r,
        )
        self.shards = Gauge(p + "shards", "Shards (requests in parallel) in use.", _Q, registry=r)
        self.shards_min = Gauge(p + "shards_min", "min_shards.", _Q, registry=r)
        self.shards_max = Gauge(p + "shards_max", "max_shards.", _Q, registry=r)
        self.shards_desired = Gauge(
            p + "shards_desired", "Shards the queue wants next round.", _Q, registry=r
        )
        self.capacity = Gauge(p + "shard_capacity", "capacity of each shard.", _Q, registry=r)
        self.duration = Histogram(
            p + "sent_batch_duration_seconds",
            "Duration of a successful send request.",
            _Q,
            registry=r,
        )
        self.segment = Gauge(
            "prometheus_wal_watcher_current_segment",
            "The WAL segment the watcher is reading.",
            ["consumer"],
            registry=r,
        )
        self._highest_in = 0.0

    def queue(self, name: str, url: str) -> QueueMetrics:
        """The children of one queue."""
        return QueueMetrics(self, name, url)


class QueueMetrics:
    """One queue's series of every family."""

    def __init__(self, parent: RemoteMetrics, name: str, url: str) -> None:
        self._parent = parent
        self.samples = parent.samples.labels(name, url)
        self.samples_failed = parent.failed.labels(name, url)
        self.samples_retried = parent.retried.labels(name, url)
        self.samples_dropped = parent.dropped.labels(name, url)
        self.samples_in = parent.samples_in.labels(name, url)
        self.pending = parent.pending.labels(name, url)
        self.bytes = parent.bytes.labels(name, url)
        self.highest_sent = parent.highest_sent.labels(name, url)
        self.shards = parent.shards.labels(name, url)
        self.shards_desired = parent.shards_desired.labels(name, url)
        self._shards_min = parent.shards_min.labels(name, url)
        self._shards_max = parent.shards_max.labels(name, url)
        self._capacity = parent.capacity.labels(name, url)
        self.duration = parent.duration.labels(name, url)
        self.current_segment = parent.segment.labels(name)
        self.retries = 0  # requests retried, to tell a healthy full round from a struggling one
        self._highest_sent_ms = 0

    def set_shard_limits(self, low: int, high: int, capacity: int) -> None:
        """Export the configured limits; the queue starts at ``low`` shards."""
        self._shards_min.set(low)
        self._shards_max.set(high)
        self._capacity.set(capacity)
        self.shards.set(low)
        self.shards_desired.set(low)

    def note_read(self, newest_ms: int) -> None:
        """A sample as new as ``newest_ms`` was read from the WAL."""
        parent = self._parent
        if newest_ms / 1000 > parent._highest_in:
            parent._highest_in = newest_ms / 1000
            parent.highest_in.set(parent._highest_in)

    def observe_sent(self, samples: int, size: int, seconds: float, newest_ms: int) -> None:
        """A request of ``samples`` (``size`` bytes) was acknowledged."""
        self.samples.inc(samples)
        self.bytes.inc(size)
        self.duration.observe(seconds)
        if newest_ms > self._highest_sent_ms:
            self._highest_sent_ms = newest_ms
            self.highest_sent.set(newest_ms / 1000)
