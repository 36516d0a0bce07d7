"""Prometheus remote write 1.0 on the wire: protobuf messages, encoding and snappy framing.

The messages (``prometheus.WriteRequest`` and what it holds) are declared
here through the protobuf runtime's descriptor API, from the published
remote write 1.0 specification: no generated module, no ``protoc`` step.
They are what tests and tools decode with.

The hot path (:class:`WriteRequestEncoder`) builds the same bytes without a
message object per sample: a series' label part is serialized once by
protobuf and cached, and each sample is two fixed fields. Protobuf's wire
format makes the two identical (a message is the concatenation of its
fields), which the tests check by decoding with the messages below.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

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


#: A Sample's value as protobuf writes a double (little-endian IEEE 754).
pack_double = struct.Struct("<d").pack


class WriteRequestEncoder:
    """Builds WriteRequest bodies from encoded samples, grouped by series.

    A Sample is ``value`` (field 1, fixed64) then ``timestamp`` (field 2,
    varint). Timestamps of a batch repeat (one scrape, one instant), so the
    bytes around each value are cached per timestamp: :meth:`sample` is one
    dict lookup, one ``struct.pack`` and two concatenations.
    """

    def __init__(self) -> None:
        self.frames: dict[int, tuple[bytes, bytes]] = {}

    def frame(self, t: int) -> tuple[bytes, bytes]:
        """The bytes before and after the value of a Sample at ``t`` (cached)."""
        if len(self.frames) > 100_000:  # bounded: a long backfill has many distinct times
            self.frames.clear()
        tail = b"\x10" + varint(t)
        # samples field (2, length-delimited), the Sample's length, then value's tag (1, fixed64)
        head = b"\x12" + bytes((9 + len(tail),)) + b"\x09"
        self.frames[t] = (head, tail)
        return head, tail

    def sample(self, t: int, v: float) -> bytes:
        """One encoded ``samples`` field of a TimeSeries."""
        head, tail = self.frames.get(t) or self.frame(t)
        return head + pack_double(v) + tail

    @staticmethod
    def request(series: Iterable[tuple[bytes, Sequence[bytes]]]) -> bytes:
        """The serialized WriteRequest of ``(label bytes, encoded samples)`` per TimeSeries."""
        out: list[bytes] = []
        for label_bytes, samples in series:
            inner = label_bytes + b"".join(samples)
            out.append(b"\x0a" + varint(len(inner)) + inner)
        return b"".join(out)

    def encode(self, series: Iterable[tuple[bytes, Sequence[int], Sequence[float]]]) -> bytes:
        """The serialized WriteRequest for ``series`` (each: label bytes, times, values)."""
        sample = self.sample
        return self.request(
            (lb, [sample(t, v) for t, v in zip(times, values, strict=True)])
            for lb, times, values in series
        )


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
