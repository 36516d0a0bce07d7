"""Prometheus remote write 1.0 on the wire: protobuf messages, encoding and snappy framing.

The messages (``prometheus.WriteRequest`` and what it holds) are declared
here through the protobuf runtime's descriptor API, from the published
remote write 1.0 specification: no generated module, no ``protoc`` step.
They are what tests and tools decode with.

The hot path (:func:`encode_samples`, :func:`timeseries_head`) builds the
same bytes without a message object per sample: a series' label part is
serialized once by protobuf and cached, and the samples of a whole batch are
encoded at once with numpy. Protobuf's wire format makes the two identical (a
message is the concatenation of its fields), which the tests check by
decoding with the messages below.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from numpy.typing import NDArray

from soulwatch.exceptions import MissingExtraError
from soulwatch.tsdb.model import Labels

#: Headers every remote write 1.0 request carries.
PROTOCOL_HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(
        name="soulwatch/remote/prometheus_remote_write_1_0.proto",
        package="prometheus",
        syntax="proto3",
    )

    def message(name: str, fields: Sequence[tuple[str, int, int, int, str]]) -> None:
        msg = fd.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = msg.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name

    one, many = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
    message(
        "WriteRequest",
        [
            ("timeseries", 1, _F.TYPE_MESSAGE, many, ".prometheus.TimeSeries"),
            ("metadata", 3, _F.TYPE_MESSAGE, many, ".prometheus.MetricMetadata"),
        ],
    )
    message(
        "TimeSeries",
        [
            ("labels", 1, _F.TYPE_MESSAGE, many, ".prometheus.Label"),
            ("samples", 2, _F.TYPE_MESSAGE, many, ".prometheus.Sample"),
        ],
    )
    message("Label", [("name", 1, _F.TYPE_STRING, one, ""), ("value", 2, _F.TYPE_STRING, one, "")])
    message(
        "Sample", [("value", 1, _F.TYPE_DOUBLE, one, ""), ("timestamp", 2, _F.TYPE_INT64, one, "")]
    )
    meta = fd.message_type.add(name="MetricMetadata")
    kinds = meta.enum_type.add(name="MetricType")
    metric_types = "UNKNOWN COUNTER GAUGE HISTOGRAM GAUGEHISTOGRAM SUMMARY INFO STATESET"
    for number, kind in enumerate(metric_types.split()):
        kinds.value.add(name=kind, number=number)
    meta.field.add(
        name="type",
        number=1,
        type=_F.TYPE_ENUM,
        label=one,
        type_name=".prometheus.MetricMetadata.MetricType",
    )
    for field_name, number in (("metric_family_name", 2), ("help", 4), ("unit", 5)):
        meta.field.add(name=field_name, number=number, type=_F.TYPE_STRING, label=one)
    return fd


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_file())
    names = ("WriteRequest", "TimeSeries", "Label", "Sample", "MetricMetadata")
    return {
        n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"prometheus.{n}"))
        for n in names
    }


_CLASSES = _classes()
#: ``prometheus.WriteRequest``: ``timeseries`` (1) and ``metadata`` (3).
WriteRequest: Any = _CLASSES["WriteRequest"]
#: ``prometheus.TimeSeries``: ``labels`` (1, sorted by name) and ``samples`` (2, by time).
TimeSeries: Any = _CLASSES["TimeSeries"]
#: ``prometheus.Label``: ``name``, ``value``.
Label: Any = _CLASSES["Label"]
#: ``prometheus.Sample``: ``value`` (double), ``timestamp`` (int64 milliseconds).
Sample: Any = _CLASSES["Sample"]
#: ``prometheus.MetricMetadata``: ``type``, ``metric_family_name``, ``help``, ``unit``.
MetricMetadata: Any = _CLASSES["MetricMetadata"]


def varint(n: int) -> bytes:
    """``n`` (two's complement for a negative int64) as a protobuf varint."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_labels(labels: Iterable[tuple[str, str]]) -> bytes:
    """A TimeSeries' label fields, serialized by protobuf (sorted by name, as the spec asks)."""
    series = TimeSeries()
    for name, value in sorted(labels):
        series.labels.add(name=name, value=value)
    data: bytes = series.SerializeToString()
    return data


def encode_samples(
    ts: NDArray[np.int64], vals: NDArray[np.float64]
) -> tuple[bytes, NDArray[np.int64]]:
    """Every sample as an encoded ``samples`` field of a TimeSeries, back to back.

    ``ts`` (int64 milliseconds) and ``vals`` (float64) are numpy arrays of one
    length ``n``. Returns the bytes and ``n + 1`` offsets: sample ``i`` is
    ``data[offsets[i]:offsets[i + 1]]``, so a run of samples is one slice.

    A Sample is ``0x12``, its length, ``0x09`` and the value's 8 bytes
    (field 1, fixed64), then ``0x10`` and the timestamp's varint (field 2).
    Built column by column with numpy, not sample by sample: the value and
    each varint byte are one array operation over the whole batch.
    """
    n = len(ts)
    u = np.asarray(ts, dtype=np.int64).view(np.uint64)  # a negative int64 is a 10-byte varint
    width = np.ones(n, dtype=np.int64)  # varint bytes of each timestamp
    for k in range(1, 10):
        width += u >= np.uint64(1 << (7 * k))
    size = 12 + width
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(size, out=offsets[1:])
    buf = np.empty(int(offsets[-1]), dtype=np.uint8)
    at = offsets[:-1]
    buf[at] = 0x12
    buf[at + 1] = 10 + width
    buf[at + 2] = 0x09
    value_bytes = np.asarray(vals, dtype="<f8").view(np.uint8).reshape(n, 8)
    for j in range(8):
        buf[at + 3 + j] = value_bytes[:, j]
    buf[at + 11] = 0x10
    for k in range(int(width.max()) if n else 0):
        has = width > k
        group = (u[has] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = np.where(width[has] - 1 > k, 0x80, 0).astype(np.uint64)
        buf[at[has] + 12 + k] = (group | more).astype(np.uint8)
    return buf.tobytes(), offsets


def timeseries_head(label_bytes: bytes, samples_size: int) -> bytes:
    """The tag and length that open a ``timeseries`` field of ``label_bytes`` and samples."""
    return b"\x0a" + varint(len(label_bytes) + samples_size)


def encode_write_request(
    series: Iterable[tuple[bytes, Sequence[int], Sequence[float]]],
) -> bytes:
    """The serialized WriteRequest for ``series`` (each: label bytes, times, values)."""
    out: list[bytes] = []
    for label_bytes, times, values in series:
        data, _ = encode_samples(np.array(times, dtype=np.int64), np.array(values, dtype=float))
        out += (timeseries_head(label_bytes, len(data)), label_bytes, data)
    return b"".join(out)


#: ``MetricMetadata.MetricType`` of each exposition ``# TYPE`` (anything else is UNKNOWN).
METRIC_TYPES = {
    "counter": 1,
    "gauge": 2,
    "histogram": 3,
    "gaugehistogram": 4,
    "summary": 5,
    "info": 6,
    "stateset": 7,
}


def encode_metadata(families: Iterable[tuple[str, str, str, str]]) -> bytes:
    """A serialized WriteRequest of ``metadata`` only: ``(name, type, help, unit)`` per family."""
    request = WriteRequest()
    for name, kind, help_text, unit in families:
        request.metadata.add(
            type=METRIC_TYPES.get(kind, 0), metric_family_name=name, help=help_text, unit=unit
        )
    data: bytes = request.SerializeToString()
    return data


def snappy_compress(data: bytes) -> bytes:
    """Snappy block format (not the framed stream format), as remote write requires."""
    try:
        import cramjam
    except ImportError as exc:  # pragma: no cover - part of the monitor extra
        raise MissingExtraError("cramjam", "monitor") from exc
    return bytes(cramjam.snappy.compress_raw(data))


def snappy_decompress(data: bytes) -> bytes:
    """Inverse of :func:`snappy_compress`."""
    try:
        import cramjam
    except ImportError as exc:  # pragma: no cover - part of the monitor extra
        raise MissingExtraError("cramjam", "monitor") from exc
    return bytes(cramjam.snappy.decompress_raw(data))


def decode_write_request(body: bytes) -> list[tuple[Labels, list[tuple[int, float]]]]:
    """A snappy-compressed WriteRequest as ``(labels, [(t_ms, value), ...])`` per series."""
    request = WriteRequest()
    request.ParseFromString(snappy_decompress(body))
    return [
        (
            Labels((lb.name, lb.value) for lb in ts.labels),
            [(s.timestamp, s.value) for s in ts.samples],
        )
        for ts in request.timeseries
    ]
