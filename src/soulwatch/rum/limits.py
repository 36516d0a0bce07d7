"""Per-key token buckets with a bounded number of keys (sessions, addresses)."""

from __future__ import annotations

from collections import OrderedDict


class RateLimiter:
    """Allows ``per_minute`` events per key, in bursts of up to a minute's worth.

    At most ``max_keys`` keys are tracked; the least recently seen is forgotten
    first, so a flood of new keys costs memory no more than ``max_keys``.
    """

    def __init__(self, per_minute: int, max_keys: int) -> None:
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def allow(self, key: str, cost: int, now: float) -> bool:
        """Take ``cost`` tokens from ``key``'s bucket at ``now``; False when too few are left."""
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - last) * self._rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, cost: int) -> int:
        """Seconds after which ``cost`` tokens are back (at least 1)."""
        return max(1, int(min(cost, self._burst) / self._rate + 0.999))
