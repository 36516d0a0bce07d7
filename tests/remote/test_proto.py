"""The remote write 1.0 encoding decodes, with protobuf, to exactly the samples given."""

from __future__ import annotations

import math
import random
import struct

from soulwatch.remote.proto import (
    TimeSeries,
    WriteRequest,
    decode_write_request,
    encode_labels,
    encode_write_request,
    snappy_compress,
    snappy_decompress,
    varint,
)
from soulwatch.tsdb.model import STALE_NAN, Labels


def test_encoded_requests_decode_to_the_same_series_and_samples() -> None:
    a = Labels.of(__name__="http_requests_total", job="api", code="200", path="/é/ü")
    b = Labels.of(__name__="up", job="api")
    series = [
        (a, [1_700_000_000_000, 1_700_000_015_000], [1.0, 0.0]),
        (b, [-5, 0, 2**62], [-2.5, 1e308, float("inf")]),
    ]
    body = snappy_compress(encode_write_request([(encode_labels(lb), t, v) for lb, t, v in series]))
    decoded = decode_write_request(body)
    assert decoded == [(lb, list(zip(t, v, strict=True))) for lb, t, v in series]


def test_labels_are_sorted_by_name_on_the_wire() -> None:
    request = WriteRequest()
    request.ParseFromString(
        encode_write_request(
            [(encode_labels([("z", "1"), ("__name__", "m"), ("a", "2")]), [1], [1.0])]
        )
    )
    assert [lb.name for lb in request.timeseries[0].labels] == ["__name__", "a", "z"]


def test_a_staleness_marker_keeps_its_bits() -> None:
    body = encode_write_request([(encode_labels([("__name__", "m")]), [10], [STALE_NAN])])
    request = WriteRequest()
    request.ParseFromString(body)
    value = request.timeseries[0].samples[0].value
    assert math.isnan(value)
    assert struct.pack("<d", value) == struct.pack("<d", STALE_NAN)


def test_varint_and_snappy_round_trip() -> None:
    assert varint(0) == b"\x00"
    assert varint(300) == b"\xac\x02"
    assert len(varint(-1)) == 10  # int64 -1 is ten bytes, as protobuf writes it
    data = b"remote write " * 1000
    assert snappy_decompress(snappy_compress(data)) == data
    assert len(snappy_compress(data)) < len(data) // 10


def test_the_encoding_is_what_protobuf_writes() -> None:
    # Timestamps of every varint width (1 to 10 bytes, negatives included) and odd values.
    rng = random.Random(17)
    times = [0, 1, 127, 128, 2**14, 2**35, 1_796_416_176_848, 2**62, -1, -(2**63)]
    times += [rng.randrange(-(2**63), 2**63) for _ in range(200)]
    values = [rng.choice([0.0, -0.0, 1.5, 1e308, float("inf"), STALE_NAN]) for _ in times]
    label_bytes = encode_labels([("__name__", "m"), ("job", "j")])

    def reference(pairs: list[tuple[int, float]]) -> bytes:
        request = WriteRequest()
        series = request.timeseries.add()
        series.MergeFrom(TimeSeries.FromString(label_bytes))
        for t, v in pairs:
            series.samples.add(timestamp=t, value=v)
        return bytes(request.SerializeToString())

    pairs = list(zip(times, values, strict=True))
    ours = encode_write_request([(label_bytes, times, values)])
    # protobuf leaves out a field at its default (0, 0.0); written out it reads the same.
    assert WriteRequest.FromString(ours).SerializeToString() == reference(pairs)
    no_defaults = [(t, v) for t, v in pairs if t != 0 and struct.pack("<d", v) != bytes(8)]
    assert len(no_defaults) > 150
    ts, vs = zip(*no_defaults, strict=True)
    assert encode_write_request([(label_bytes, ts, vs)]) == reference(no_defaults)
    assert encode_write_request([]) == b""
