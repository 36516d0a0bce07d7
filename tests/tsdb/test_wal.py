"""WAL sample records: compact for a scrape's batch, exact for anything else."""

from __future__ import annotations

import math
import struct
from array import array

import pytest

from soulwatch.exceptions import StorageError
from soulwatch.tsdb.model import STALE_NAN
from soulwatch.tsdb.wal import decode_samples, encode_samples


@pytest.mark.parametrize(
    ("ids", "ts"),
    [
        ([1, 2, 3], [1_700_000_000_000] * 3),  # one scrape: narrow ids, one timestamp
        ([7, 7, 9], [5, 6, 7]),  # several timestamps
        ([2**40, 3], [-(2**62), 2**62]),  # ids wider than 32 bits, extreme times
        ([], []),
        ([4], [0]),
    ],
)
def test_sample_records_round_trip(ids: list[int], ts: list[int]) -> None:
    vals = [STALE_NAN, math.nan, -math.inf, 1.5, -0.0][: len(ids)]
    got_ids, got_ts, got_vals = decode_samples(
        encode_samples(array("q", ids), array("q", ts), array("d", vals))
    )
    assert list(got_ids) == ids
    assert list(got_ts) == ts
    assert [struct.pack("<d", v) for v in got_vals] == [struct.pack("<d", v) for v in vals]


def test_a_scrape_batch_costs_twelve_bytes_a_sample() -> None:
    n = 1000
    payload = encode_samples(
        array("q", range(1, n + 1)), array("q", [1_700_000_000_000] * n), array("d", [1.0] * n)
    )
    assert len(payload) == 5 + 12 * n + 8


def test_a_record_of_the_wrong_length_is_refused() -> None:
    payload = encode_samples(array("q", [1, 2]), array("q", [3, 4]), array("d", [5.0, 6.0]))
    with pytest.raises(StorageError, match="cannot hold 2 samples"):
        decode_samples(payload[:-1])
