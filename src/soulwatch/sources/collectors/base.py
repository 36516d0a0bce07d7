"""What every collector shares: the protocol, a histogram, and timestamp parsing."""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from soulwatch.tsdb.model import Labels

#: One collected sample: its full label set (``__name__`` included) and value.
CollectedSample = tuple[Labels, float]


@runtime_checkable
class Collector(Protocol):
    """Reads a system and returns its current samples; run on a schedule by the monitor."""

    name: str

    async def collect(self) -> list[CollectedSample]:
        """One collection cycle. Raises on failure; the caller records the error."""
        ...

    async def aclose(self) -> None:
        """Release clients (the monitor stops the collector)."""
        ...


def sample(name: str, value: float, **labels: str) -> CollectedSample:
    """A sample of metric ``name`` with ``labels``."""
    return Labels.of(labels, __name__=name), float(value)


class Histogram:
    """A cumulative histogram rendered as Prometheus ``_bucket``/``_sum``/``_count`` series."""

    def __init__(self, name: str, buckets: Sequence[float], **labels: str) -> None:
        self.name = name
        self.bounds = sorted(buckets)
        self.labels = labels
        self.counts = [0] * len(self.bounds)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Record one observation."""
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.count += 1
        self.total += value

    def samples(self) -> list[CollectedSample]:
        """The bucket, sum and count series."""
        out: list[CollectedSample] = []
        running = 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            out.append(sample(f"{self.name}_bucket", running, le=_le(bound), **self.labels))
        out.append(sample(f"{self.name}_bucket", self.count, le="+Inf", **self.labels))
        out.append(sample(f"{self.name}_sum", self.total, **self.labels))
        out.append(sample(f"{self.name}_count", self.count, **self.labels))
        return out


def _le(bound: float) -> str:
    # Prometheus clients print bucket bounds as floats: "0.5", "1.0", "900.0".
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def parse_timestamp(text: str | None) -> float | None:
    """Seconds since the epoch from an ISO-8601 string (naive means UTC) or a number."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()
