"""Remote write's own metrics, under Prometheus's names so its dashboards and alerts apply.

Per queue the labels are ``remote_name`` and ``url`` (credentials removed),
as Prometheus labels them; ``prometheus_remote_storage_highest_timestamp_in_seconds``
has none. Lag is ``highest_timestamp_in_seconds -
queue_highest_sent_timestamp_seconds``, the usual alert expression.

Every family is one row of :data:`FAMILIES`; a queue's series of a family
is the :class:`QueueMetrics` attribute of the same name.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

_P = "prometheus_remote_storage_"
_QUEUE = ("remote_name", "url")


class Family(NamedTuple):
    """One metric family: its kind, Prometheus's name, help, and label names."""

    kind: type[MetricWrapperBase]
    name: str
    help: str
    labels: tuple[str, ...] = _QUEUE


#: Every family by the attribute it is known by (in :class:`QueueMetrics` too).
FAMILIES: dict[str, Family] = {
    "samples": Family(Counter, _P + "samples", "Samples sent to remote storage."),
    "samples_failed": Family(
        Counter,
        _P + "samples_failed",
        "Samples that failed on send and were not retried (a 4xx answer).",
    ),
    "samples_retried": Family(
        Counter, _P + "samples_retried", "Samples sent again after a recoverable error."
    ),
    "samples_dropped": Family(
        Counter,
        _P + "samples_dropped",
        "Samples not sent: dropped by write_relabel_configs or without labels.",
    ),
    "samples_in": Family(Counter, _P + "samples_in", "Samples read from the WAL into the queue."),
    "pending": Family(Gauge, _P + "samples_pending", "Samples read and not yet acknowledged."),
    "bytes": Family(Counter, _P + "bytes", "Compressed bytes of sent requests."),
    "metadata": Family(Counter, _P + "metadata", "Metric metadata entries sent."),
    "metadata_failed": Family(
        Counter, _P + "metadata_failed", "Metric metadata entries the receiver refused."
    ),
    "metadata_retried": Family(
        Counter, _P + "metadata_retried", "Metric metadata entries sent again after an error."
    ),
    "metadata_bytes": Family(
        Counter, _P + "metadata_bytes", "Compressed bytes of sent metadata requests."
    ),
    "highest_sent": Family(
        Gauge,
        _P + "queue_highest_sent_timestamp_seconds",
        "Newest sample timestamp the receiver acknowledged.",
    ),
    "highest_in": Family(
        Gauge, _P + "highest_timestamp_in_seconds", "Newest sample timestamp read from the WAL.", ()
    ),
    "shards": Family(Gauge, _P + "shards", "Shards (requests in parallel) in use."),
    "shards_min": Family(Gauge, _P + "shards_min", "min_shards."),
    "shards_max": Family(Gauge, _P + "shards_max", "max_shards."),
    "shards_desired": Family(Gauge, _P + "shards_desired", "Shards the queue wants next round."),
    "capacity": Family(Gauge, _P + "shard_capacity", "capacity of each shard."),
    "duration": Family(
        Histogram, _P + "sent_batch_duration_seconds", "Duration of a successful send request."
    ),
    "current_segment": Family(
        Gauge,
        "prometheus_wal_watcher_current_segment",
        "The WAL segment the watcher is reading.",
        ("consumer",),
    ),
}


class RemoteMetrics:
    """Every remote write metric family, registered once in ``registry``."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.families: dict[str, MetricWrapperBase] = {
            attr: f.kind(f.name, f.help, f.labels, registry=registry)
            for attr, f in FAMILIES.items()
        }
        highest_in = self.families["highest_in"]
        assert isinstance(highest_in, Gauge)
        self.highest_in = highest_in
        self._highest_in = 0.0

    def queue(self, name: str, url: str) -> QueueMetrics:
        """The children of one queue."""
        return QueueMetrics(self, name, url)

    def note_read(self, newest_ms: int) -> None:
        """A sample as new as ``newest_ms`` was read from the WAL (by any queue)."""
        if newest_ms / 1000 > self._highest_in:
            self._highest_in = newest_ms / 1000
            self.highest_in.set(self._highest_in)


class QueueMetrics:
    """One queue's series of every labelled family (see :data:`FAMILIES`)."""

    samples: Counter
    samples_failed: Counter
    samples_retried: Counter
    samples_dropped: Counter
    samples_in: Counter
    pending: Gauge
    bytes: Counter
    metadata: Counter
    metadata_failed: Counter
    metadata_retried: Counter
    metadata_bytes: Counter
    highest_sent: Gauge
    shards: Gauge
    shards_min: Gauge
    shards_max: Gauge
    shards_desired: Gauge
    capacity: Gauge
    duration: Histogram
    current_segment: Gauge

    def __init__(self, parent: RemoteMetrics, name: str, url: str) -> None:
        self._parent = parent
        values = {"remote_name": name, "url": url, "consumer": name}
        for attr, family in FAMILIES.items():
            if family.labels:
                child = parent.families[attr].labels(*(values[k] for k in family.labels))
                setattr(self, attr, child)
        self.retries = 0  # requests retried, to tell a healthy full round from a struggling one
        self._highest_sent_ms = 0

    def set_shard_limits(self, low: int, high: int, capacity: int) -> None:
        """Export the configured limits; the queue starts at ``low`` shards."""
        self.shards_min.set(low)
        self.shards_max.set(high)
        self.capacity.set(capacity)
        self.shards.set(low)
        self.shards_desired.set(low)

    def note_read(self, newest_ms: int) -> None:
        """A sample as new as ``newest_ms`` was read from the WAL."""
        self._parent.note_read(newest_ms)

    def observe_sent(self, samples: int, size: int, seconds: float, newest_ms: int) -> None:
        """A request of ``samples`` (``size`` bytes) was acknowledged."""
        self.samples.inc(samples)
        self.bytes.inc(size)
        self.duration.observe(seconds)
        if newest_ms > self._highest_sent_ms:
            self._highest_sent_ms = newest_ms
            self.highest_sent.set(newest_ms / 1000)
