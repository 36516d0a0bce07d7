"""Small helpers for the engine tests: load samples, read results."""

from __future__ import annotations

from collections.abc import Iterable

from soulwatch.promql.engine import Engine
from soulwatch.promql.values import QueryResult, Sample
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Series


def load(
    storage: MemoryStorage,
    labels: Labels,
    points: Iterable[tuple[int, float]],
) -> None:
    """Add ``(seconds, value)`` points to ``storage``."""
    for t_s, value in points:
        storage.add(labels, t_s * 1000, value)


def series(name: str, **labels: str) -> Labels:
    """A label set with a metric name."""
    return Labels.of(__name__=name, **labels)


def every(step_s: int, values: Iterable[float], start_s: int = 0) -> list[tuple[int, float]]:
    """Points ``start, start+step, ...`` with ``values``."""
    return [(start_s + i * step_s, v) for i, v in enumerate(values)]


def vector(result: QueryResult) -> dict[str, float]:
    """An instant-vector result as ``{labels-as-text: value}``."""
    assert isinstance(result.value, list)
    out = {}
    for s in result.value:
        assert isinstance(s, Sample)
        out[str(s.labels)] = s.value
    return out


def matrix(result: QueryResult) -> dict[str, list[tuple[float, float]]]:
    """A matrix result as ``{labels-as-text: [(seconds, value), ...]}``."""
    assert isinstance(result.value, list)
    out = {}
    for s in result.value:
        assert isinstance(s, Series)
        out[str(s.labels)] = [(t / 1000, v) for t, v in s]
    return out


def instant(storage: MemoryStorage, query: str, t_s: float, **kwargs: object) -> QueryResult:
    """Run an instant query at ``t_s`` seconds."""
    return Engine(storage, **kwargs).instant(query, int(t_s * 1000))  # type: ignore[arg-type]
