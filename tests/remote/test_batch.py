"""A round splits into the same requests every time: by shard, series first seen, per_send cuts."""

from __future__ import annotations

import random
from array import array

from soulwatch.remote.batch import split_round
from soulwatch.remote.proto import WriteRequest, encode_labels


def _labels(sid: int) -> bytes | None:
    # Every tenth series is relabeled away.
    return None if sid % 10 == 0 else encode_labels([("__name__", "m"), ("id", str(sid))])


def _expected(
    rows: list[tuple[int, int, float]], shards: int, per_send: int
) -> list[list[list[tuple[int, int, float]]]]:
    # The rule, sample by sample: shard = id % shards; series in first-seen order.
    per_shard: list[dict[int, list[tuple[int, int, float]]]] = [{} for _ in range(shards)]
    for sid, t, v in rows:
        if _labels(sid) is not None:
            per_shard[sid % shards].setdefault(sid, []).append((sid, t, v))
    out = []
    for series in per_shard:
        flat = [row for run in series.values() for row in run]
        out.append([flat[i : i + per_send] for i in range(0, len(flat), per_send)])
    return out


def test_requests_follow_shard_series_order_and_per_send() -> None:
    rng = random.Random(11)
    rows = []
    clock = dict.fromkeys(range(1, 51), 1_796_416_176_848)
    for _ in range(2_000):
        sid = rng.randrange(1, 51)
        clock[sid] += rng.randrange(1, 30_000)
        rows.append((sid, clock[sid], rng.random()))
    ids = array("q", [r[0] for r in rows])
    ts = array("q", [r[1] for r in rows])
    vals = array("d", [r[2] for r in rows])
    planned = split_round(ids, ts, vals, label_bytes=_labels, shards=3, per_send=7)
    got = []
    for requests in planned.shards:
        decoded = []
        for request in requests:
            message = WriteRequest.FromString(request.body())
            samples = [
                (int(series.labels[1].value), s.timestamp, s.value)
                for series in message.timeseries
                for s in series.samples
            ]
            assert request.count == len(samples)
            assert request.newest_ms == max(t for _, t, _ in samples)
            decoded.append(samples)
        got.append(decoded)
    assert got == _expected(rows, 3, 7)
    assert planned.dropped == sum(1 for sid, _, _ in rows if sid % 10 == 0)
    again = split_round(ids, ts, vals, label_bytes=_labels, shards=3, per_send=7)
    assert [[r.body() for r in s] for s in again.shards] == [
        [r.body() for r in s] for s in planned.shards
    ]


def test_an_empty_or_all_dropped_round_has_no_request() -> None:
    empty = split_round(
        array("q"), array("q"), array("d"), label_bytes=_labels, shards=2, per_send=5
    )
    assert empty.shards == [[], []]
    assert empty.dropped == 0
    gone = split_round(
        array("q", [10, 20]), array("q", [1, 2]), array("d", [1.0, 2.0]),
        label_bytes=_labels, shards=2, per_send=5,
    )  # fmt: skip
    assert gone.shards == [[], []]
    assert gone.dropped == 2
