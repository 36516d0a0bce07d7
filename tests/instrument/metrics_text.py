"""Reading a /metrics exposition back into numbers, with prometheus_client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    """Every sample of an exposition."""
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(text: str, name: str, /, **labels: str) -> float | None:
    """The value of the sample ``name`` whose labels include ``labels``; None if absent."""
    found = [
        s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items()
    ]
    if len(found) > 1:
        raise AssertionError(f"{name}{labels} matches {len(found)} samples")
    return found[0] if found else None


def total(text: str, name: str, /, **labels: str) -> float:
    """The sum over every sample ``name`` whose labels include ``labels``."""
    return sum(
        s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items()
    )


def label_values(text: str, name: str, label: str) -> set[str]:
    """The values ``label`` takes across samples of ``name``."""
    return {s.labels[label] for s in samples(text) if s.name == name and label in s.labels}
