"""Decoded chunks kept for the next query: a least-recently-used map bounded in bytes.

Decoding a Gorilla chunk walks its bit stream sample by sample in Python,
by far the largest cost of reading persisted data: a board of range queries
decodes the same chunks panel after panel, refresh after refresh. A chunk's
decoded samples depend only on its bytes, so the cache is keyed by the bytes
themselves: nothing to invalidate when compaction, retention or a reused
row id changes what a series id or chunk id refers to, and two chunks with
equal bytes share one entry. A query that selects the same series several
times (a board, a subquery, ``a / a offset 1h``) decodes each chunk once.

The cached arrays are never handed out: readers copy the slice they need.
"""

from __future__ import annotations

import threading
from array import array
from collections import OrderedDict
from collections.abc import Callable

#: Bytes charged per entry beyond its samples (dict slot, tuple, array headers, key).
_ENTRY_OVERHEAD = 256

Decoded = tuple["array[int]", "array[float]"]


class ChunkCache:
    """Decoded ``(timestamps, values)`` by chunk bytes, at most ``max_bytes`` of them.

    ``max_bytes`` 0 turns the cache off (every read decodes). Thread-safe:
    query threads share it; a chunk is decoded outside the lock, so two
    threads missing the same chunk at once both decode it (same result).
    """

    def __init__(self, max_bytes: int, decode: Callable[[bytes], Decoded]) -> None:
        self.max_bytes = max_bytes
        self._decode = decode
        self._entries: OrderedDict[bytes, Decoded] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Bytes charged for the entries held now."""
        return self._bytes

    def get(self, data: bytes) -> Decoded:
        """The decoded samples of chunk ``data``; the caller must not modify them."""
        if not self.max_bytes:
            return self._decode(data)
        with self._lock:
            found = self._entries.get(data)
            if found is not None:
                self._entries.move_to_end(data)
                self.hits += 1
                return found
            self.misses += 1
        decoded = self._decode(data)
        cost = _cost(data, decoded)
        if cost > self.max_bytes:
            return decoded
        with self._lock:
            if data not in self._entries:
                self._entries[data] = decoded
                self._bytes += cost
                while self._bytes > self.max_bytes:
                    old_key, old = self._entries.popitem(last=False)
                    self._bytes -= _cost(old_key, old)
        return decoded

    def clear(self) -> None:
        """Forget every entry (the store is closing)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def _cost(data: bytes, decoded: Decoded) -> int:
    ts, vals = decoded
    return len(data) + ts.itemsize * len(ts) + vals.itemsize * len(vals) + _ENTRY_OVERHEAD
