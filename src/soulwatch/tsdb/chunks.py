"""Gorilla-style compressed chunks: delta-of-delta timestamps and XOR'd floats.

The layout follows Prometheus's XOR chunk (itself from Facebook's Gorilla
paper), so its compression ratios carry over:

* a 2-byte big-endian sample count;
* the first timestamp as a zig-zag varint and the first value as 64 raw bits;
* the second timestamp as an unsigned varint delta;
* every later timestamp as a delta-of-delta in a prefix-coded bucket
  (``0`` / ``10``+14 bits / ``110``+17 bits / ``1110``+20 bits / ``1111``+64 bits);
* every later value XOR'd with the previous one: ``0`` when equal, else
  ``1`` then either ``0`` + the meaningful bits inside the previous window, or
  ``1`` + 5 bits of leading zeros + 6 bits of length + the meaningful bits.

Values are handled as their raw 64-bit patterns, so every NaN payload (the
staleness marker included) round-trips bit for bit.

The bit stream is built in a Python ``int`` (shift and or) and read back the
same way: chunks are small (a couple of hundred bytes), so this stays cheap
without a C extension.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Sequence

from soulwatch.exceptions import StorageError

#: The most samples one chunk holds (the count is stored in 16 bits).
MAX_SAMPLES = 0xFFFF

_MASK64 = (1 << 64) - 1
# Prometheus's delta-of-delta buckets: (prefix bits, prefix length, payload bits).
_BUCKETS = ((0b10, 2, 14), (0b110, 3, 17), (0b1110, 4, 20))


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _zigzag(value: int) -> int:
    return (value << 1) if value >= 0 else ((-value) << 1) - 1


def _unzigzag(value: int) -> int:
    return (value >> 1) if not value & 1 else -((value + 1) >> 1)


def encode(timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """Compress one series' samples (timestamps strictly increasing) into a chunk."""
    n = len(timestamps)
    if n != len(values):
        raise ValueError("timestamps and values differ in length")
    if n == 0 or n > MAX_SAMPLES:
        raise ValueError(f"a chunk holds 1 to {MAX_SAMPLES} samples, got {n}")
    head = bytearray(n.to_bytes(2, "big"))
    t0 = timestamps[0]
    head += _uvarint(_zigzag(t0))
    # Every value's raw 64 bits in one conversion (no per-value struct call).
    raw: array[int] = array("Q")
    raw.frombytes(array("d", values).tobytes())
    prev_bits = raw[0]
    head += prev_bits.to_bytes(8, "big")
    if n == 1:
        return bytes(head)
    delta = timestamps[1] - t0
    if delta <= 0:
        raise ValueError("timestamps must be strictly increasing")
    head += _uvarint(delta)

    acc = 0  # the bit stream, most significant bit first
    nbits = 0
    leading = trailing = -1  # the previous XOR window; -1 = none yet
    prev_t = timestamps[1]
    for i in range(1, n):
        if i >= 2:
            t = timestamps[i]
            new_delta = t - prev_t
            if new_delta <= 0:
                raise ValueError("timestamps must be strictly increasing")
            dod = new_delta - delta
            delta, prev_t = new_delta, t
            if dod == 0:
                acc <<= 1
                nbits += 1
            else:
                for prefix, plen, width in _BUCKETS:
                    if -(1 << (width - 1)) + 1 <= dod <= (1 << (width - 1)):
                        acc = (((acc << plen) | prefix) << width) | (dod & ((1 << width) - 1))
                        nbits += plen + width
                        break
                else:
                    acc = (((acc << 4) | 0b1111) << 64) | (dod & _MASK64)
                    nbits += 68
        bits = raw[i]
        xor = bits ^ prev_bits
        prev_bits = bits
        if xor == 0:
            acc <<= 1
            nbits += 1
            continue
        lead = 64 - xor.bit_length()
        trail = (xor & -xor).bit_length() - 1
        lead = min(lead, 31)  # 5 bits hold the leading-zero count
        if leading >= 0 and lead >= leading and trail >= trailing:
            width = 64 - leading - trailing
            acc = (((acc << 2) | 0b10) << width) | (xor >> trailing)
            nbits += 2 + width
        else:
            leading, trailing = lead, trail
            width = 64 - lead - trail
            # A 64-bit-wide window is stored as 0 in the 6-bit length field.
            acc = (((((acc << 2) | 0b11) << 5 | lead) << 6 | (width & 63)) << width) | (
                xor >> trail
            )
            nbits += 13 + width
    pad = (-nbits) % 8
    return bytes(head) + (acc << pad).to_bytes((nbits + pad) // 8, "big")


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise StorageError("corrupt chunk: truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def decode(data: bytes) -> tuple[array[int], array[float]]:
    """Decompress a chunk into ``(timestamps, values)`` arrays.

    The bit stream is read from its text of ``0``/``1`` characters: a bit is
    one string index and a field one ``int(..., 2)``, where shifting the
    stream as one big ``int`` would copy the whole stream at every read.
    """
    ts: array[int] = array("q")
    raw: array[int] = array("Q")
    try:
        n = int.from_bytes(data[:2], "big")
        zz, pos = _read_uvarint(data, 2)
        t = _unzigzag(zz)
        if pos + 8 > len(data):
            raise StorageError("corrupt chunk: truncated first value")
        prev_bits = int.from_bytes(data[pos : pos + 8], "big")
        pos += 8
        ts.append(t)
        raw.append(prev_bits)
        if n == 1:
            return ts, _as_floats(raw)
        delta, pos = _read_uvarint(data, pos)
        stream = data[pos:]
        total = len(stream) * 8
        bits = format(int.from_bytes(stream, "big"), f"0{total}b") if stream else ""
        at = 0  # bits consumed
        leading = trailing = 0
        width = 64
        t += delta
        ts.append(t)
        for i in range(1, n):
            if i > 1:
                if bits[at] == "0":
                    at += 1
                else:
                    # Delta-of-delta buckets: 10 + 14 bits, 110 + 17, 1110 + 20, 1111 + 64.
                    if bits[at + 1] == "0":
                        size, at = 14, at + 2
                    elif bits[at + 2] == "0":
                        size, at = 17, at + 3
                    elif bits[at + 3] == "0":
                        size, at = 20, at + 4
                    else:
                        size, at = 64, at + 4
                    if at + size > total:
                        raise StorageError("corrupt chunk: bit stream ends early")
                    delta += _signed(int(bits[at : at + size], 2), size)
                    at += size
                t += delta
                ts.append(t)
            if bits[at] == "0":  # the same value again
                at += 1
            else:
                if bits[at + 1] == "1":  # a new XOR window
                    if at + 13 > total:
                        raise StorageError("corrupt chunk: bit stream ends early")
                    leading = int(bits[at + 2 : at + 7], 2)
                    width = int(bits[at + 7 : at + 13], 2) or 64
                    trailing = 64 - leading - width
                    at += 13
                else:
                    at += 2
                    width = 64 - leading - trailing
                if at + width > total:
                    raise StorageError("corrupt chunk: bit stream ends early")
                prev_bits ^= int(bits[at : at + width], 2) << trailing
                at += width
            raw.append(prev_bits)
    except (IndexError, ValueError, struct.error, OverflowError) as exc:
        raise StorageError(f"corrupt chunk: {exc}") from exc
    return ts, _as_floats(raw)


def _as_floats(raw: array[int]) -> array[float]:
    vals: array[float] = array("d")
    vals.frombytes(raw.tobytes())
    return vals


def _signed(raw: int, width: int) -> int:
    # Buckets hold [-(2^(w-1)-1), 2^(w-1)]: values above 2^(w-1) are negative.
    return raw - (1 << width) if raw > (1 << (width - 1)) else raw
