"""Gorilla chunks: exact round trips (staleness marker included) and the compression we rely on."""

import math
import random
import struct

import pytest

from soulwatch.exceptions import StorageError
from soulwatch.tsdb.chunks import decode, encode
from soulwatch.tsdb.model import STALE_NAN, is_stale_nan


def _bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def test_random_series_round_trip_bit_for_bit() -> None:
    rng = random.Random(7)
    specials = [STALE_NAN, math.nan, -math.nan, math.inf, -math.inf, -0.0, 0.0, 5e-324, 1.8e308]
    for _ in range(300):
        n = rng.randint(1, 400)
        t = rng.randint(-(2**40), 2**41)
        ts, vals = [], []
        for _ in range(n):
            ts.append(t)
            t += rng.choice(
                [15_000, 15_000, 14_999, 15_001, 1, 10**7, 10**12, rng.randint(1, 2**22)]
            )
            r = rng.random()
            if r < 0.15:
                vals.append(rng.choice(specials))
            elif r < 0.5:
                vals.append(float(rng.randint(0, 1000)))
            else:
                vals.append(rng.uniform(-1e9, 1e9))
        got_ts, got_vals = decode(encode(ts, vals))
        assert list(got_ts) == ts
        assert _bits(list(got_vals)) == _bits(vals)


def test_staleness_marker_survives_and_stays_distinct_from_plain_nan() -> None:
    ts, vals = decode(encode([1000, 2000, 3000], [1.0, STALE_NAN, math.nan]))
    assert list(ts) == [1000, 2000, 3000]
    assert is_stale_nan(vals[1])
    assert math.isnan(vals[2])
    assert not is_stale_nan(vals[2])


def test_regular_scrapes_compress_to_under_two_bytes_a_sample() -> None:
    # A counter scraped every 15 s: timestamps cost 1 bit, values a few bits.
    ts = [1_700_000_000_000 + 15_000 * i for i in range(120)]
    counter = [float(3 * i) for i in range(120)]
    gauge = [42.0] * 120
    assert len(encode(ts, counter)) / 120 < 2.0
    assert len(encode(ts, gauge)) / 120 < 0.5


@pytest.mark.parametrize(
    ("ts", "vals"),
    [([], []), ([1, 1], [0.0, 0.0]), ([2, 1], [0.0, 0.0]), ([1, 2], [0.0])],
)
def test_bad_input_is_refused(ts: list[int], vals: list[float]) -> None:
    with pytest.raises(ValueError, match=r"samples|increasing|length"):
        encode(ts, vals)


def test_a_truncated_chunk_raises_a_storage_error() -> None:
    data = encode([1000 * i for i in range(1, 100)], [float(i) ** 0.5 for i in range(1, 100)])
    with pytest.raises(StorageError, match="corrupt chunk"):
        decode(data[: len(data) // 2])
