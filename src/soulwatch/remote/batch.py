"""How a round of samples read from the WAL becomes each shard's requests.

The split is a pure function of the samples, the shard count and
``max_samples_per_send``: a series goes to shard ``series_id % shards``;
within a shard, series come in the order they were first read and each
series' samples in the order read (so in time order); a request holds the
next ``max_samples_per_send`` of them, a series' run cut where a request
ends. Reading the same samples again after a crash rebuilds the very same
requests, which is what lets a queue resend only the unanswered ones.

The work is done on whole columns with numpy (grouping, ordering, encoding
every sample at once); Python loops only over the runs of series, not over
samples.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from soulwatch.remote.proto import encode_samples, timeseries_head


@dataclass
class Request:
    """One request's ``timeseries`` fields, ready to join, and what it carries."""

    parts: list[bytes | memoryview] = field(default_factory=list)
    count: int = 0
    newest_ms: int = 0  # the newest sample timestamp in it

    def body(self) -> bytes:
        """The serialized WriteRequest (uncompressed)."""
        return b"".join(self.parts)


@dataclass
class Round:
    """A round split into requests: ``shards[i]`` are shard ``i``'s, in sending order."""

    shards: list[list[Request]]
    dropped: int  # samples whose series has no labels to send (relabeled away, unknown)


def split_round(
    ids: array[int],
    ts: array[int],
    vals: array[float],
    *,
    label_bytes: Callable[[int], bytes | None],
    shards: int,
    per_send: int,
) -> Round:
    """Group ``(ids, ts, vals)`` by shard and series and encode them into requests.

    ``label_bytes(series_id)`` is the series' encoded labels, or None to drop
    its samples.
    """
    out: list[list[Request]] = [[] for _ in range(shards)]
    n = len(ids)
    if not n:
        return Round(out, 0)
    id_col = np.frombuffer(ids, dtype=np.int64)
    series, first, which = np.unique(id_col, return_index=True, return_inverse=True)
    labels = [label_bytes(sid) for sid in series.tolist()]
    kept_series = np.fromiter((lb is not None for lb in labels), dtype=bool, count=len(labels))
    kept = kept_series[which]
    series_shard = series % shards
    # Shard first, then series by first appearance; a stable sort keeps each series' order.
    key = series_shard[which] * n + first[which]
    rows = np.flatnonzero(kept)
    order = rows[np.argsort(key[rows], kind="stable")]
    m = len(order)
    if not m:
        return Round(out, n)
    s_ts = np.frombuffer(ts, dtype=np.int64)[order]
    s_vals = np.frombuffer(vals, dtype=np.float64)[order]
    s_series = which[order]
    s_shard = series_shard[s_series]
    shard_start = np.searchsorted(s_shard, np.arange(shards))
    request_no = (np.arange(m) - shard_start[s_shard]) // per_send
    cut = (s_series[1:] != s_series[:-1]) | (request_no[1:] != request_no[:-1])
    starts = np.concatenate(([0], np.flatnonzero(cut) + 1))
    ends = np.concatenate((starts[1:], [m]))
    data, offsets = encode_samples(s_ts, s_vals)
    view = memoryview(data)
    off = offsets.tolist()
    newest = s_ts[ends - 1].tolist()  # a series' times only grow: its run's last is newest
    shard_of = s_shard[starts].tolist()
    request_of = request_no[starts].tolist()
    series_of = s_series[starts].tolist()
    for a, b, shard, number, sid_index, t_max in zip(
        starts.tolist(), ends.tolist(), shard_of, request_of, series_of, newest, strict=True
    ):
        requests = out[shard]
        if number == len(requests):
            requests.append(Request())
        request = requests[number]
        lb = labels[sid_index]
        assert lb is not None
        size = off[b] - off[a]
        request.parts += (timeseries_head(lb, size), lb, view[off[a] : off[b]])
        request.count += b - a
        request.newest_ms = max(request.newest_ms, t_max)
    return Round(out, n - m)
