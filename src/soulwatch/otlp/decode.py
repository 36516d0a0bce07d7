"""Decoding OTLP/HTTP request bodies: protobuf or JSON, optionally gzipped."""

from __future__ import annotations

import zlib
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

M = TypeVar("M", bound=Message)


class OtlpDecodeError(ValueError):
    """The body is not a valid OTLP request; the message says why."""


def decode(body: bytes, content_type: str, encoding: str, message: type[M], limit: int) -> M:
    """``body`` as ``message``; JSON for ``application/json``, protobuf otherwise."""
    if encoding == "gzip":
        body = _gunzip(body, limit)
    elif encoding not in ("", "identity"):
        raise OtlpDecodeError(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/json":
        try:
            return json_format.Parse(body, message(), ignore_unknown_fields=True)
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            raise OtlpDecodeError(f"invalid OTLP JSON: {exc}") from None
    if kind != "application/x-protobuf":
        raise OtlpDecodeError(
            f"unsupported Content-Type {kind!r} (use application/x-protobuf or application/json)"
        )
    try:
        return message.FromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(f"invalid OTLP protobuf: {exc}") from None


def _gunzip(body: bytes, limit: int) -> bytes:
    # Bounded: a small gzip bomb must not inflate past the body limit.
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpDecodeError(f"invalid gzip body: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpDecodeError(f"decompressed body larger than {limit} bytes")
    return out
