"""The latest value of every series received over OTLP, bounded in number.

Values are cumulative, as Prometheus stores them: a delta-temporality point
is added to what the series held. Histograms keep their bucket counts.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from soulwatch.sources.collectors.base import CollectedSample, sample
from soulwatch.tsdb.model import Labels

_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def label_name(key: str) -> str:
    """An OTLP attribute key as a Prometheus label name (``http.route`` → ``http_route``)."""
    name = _INVALID.sub("_", key)
    if not name or name[0].isdigit():
        name = "key_" + name
    return name


@dataclass
class HistogramState:
    """A cumulative explicit-bucket histogram."""

    bounds: tuple[float, ...]
    counts: list[float]
    total: float = 0.0
    count: float = 0.0

    def add(self, counts: Iterable[float], total: float, count: float) -> None:
        """Add a delta (or a first cumulative value)."""
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.total += total
        self.count += count


@dataclass
class SeriesStore:
    """Counters, gauges and histograms by name and labels; at most ``max_series``."""

    max_series: int
    values: dict[tuple[str, Labels], float] = field(default_factory=dict)
    histograms: dict[tuple[str, Labels], HistogramState] = field(default_factory=dict)
    dropped: int = 0

    def _room(self, key: tuple[str, Labels], table: Mapping[tuple[str, Labels], object]) -> bool:
        if key in table:
            return True
        size = len(self.values) + sum(len(h.bounds) + 3 for h in self.histograms.values())
        if size >= self.max_series:
            self.dropped += 1
            return False
        return True

    def set(self, name: str, labels: Labels, value: float, *, delta: bool = False) -> None:
        """Set a value (or add to it, for a delta)."""
        key = (name, labels)
        if math.isnan(value) or not self._room(key, self.values):
            return
        self.values[key] = self.values.get(key, 0.0) + value if delta else value

    def observe(
        self,
        name: str,
        labels: Labels,
        bounds: tuple[float, ...],
        counts: list[float],
        *,
        total: float,
        count: float,
        delta: bool,
    ) -> None:
        """Record a histogram point (``counts`` per bucket, the last one +Inf)."""
        key = (name, labels)
        state = self.histograms.get(key)
        if state is None or state.bounds != bounds or not delta:
            if not self._room(key, self.histograms):
                return
            state = self.histograms[key] = HistogramState(bounds, [0.0] * len(counts))
        state.add(counts, total, count)

    def samples(self) -> list[CollectedSample]:
        """Every series as samples; histograms as ``_bucket``/``_sum``/``_count``."""
        out = [
            (labels.with_(__name__=name), value) for (name, labels), value in self.values.items()
        ]
        for (name, labels), state in self.histograms.items():
            base = labels.to_dict()
            running = 0.0
            for bound, n in zip((*state.bounds, math.inf), state.counts, strict=True):
                running += n
                le = "+Inf" if math.isinf(bound) else repr(float(bound))
                out.append(sample(f"{name}_bucket", running, **base, le=le))
            out.append(sample(f"{name}_sum", state.total, **base))
            out.append(sample(f"{name}_count", state.count, **base))
        return out
