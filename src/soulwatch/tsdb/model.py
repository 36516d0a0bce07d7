"""The data model shared by storage, PromQL, rules and the API.

Times are integer milliseconds since the epoch and values are floats, as in
Prometheus. A label set is a :class:`Labels`: an immutable, sorted tuple of
``(name, value)`` pairs, hashable and cheap to compare.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from soulwatch.tsdb.regex import Regex, compile_regex

METRIC_NAME = "__name__"

#: Prometheus's staleness marker: a NaN with a specific bit pattern, distinct
#: from an ordinary NaN value a target may expose.
STALE_NAN_BITS = 0x7FF0000000000002
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


def is_stale_nan(value: float) -> bool:
    """True if ``value`` is the staleness marker (not just any NaN)."""
    return math.isnan(value) and struct.pack("<d", value) == _STALE_BYTES


_STALE_BYTES = struct.pack("<d", STALE_NAN)


class Labels(tuple[tuple[str, str], ...]):
    """An immutable label set, sorted by name; empty values are dropped."""

    __slots__ = ()

    def __new__(cls, pairs: Iterable[tuple[str, str]] = ()) -> Labels:
        return super().__new__(cls, sorted((n, v) for n, v in pairs if v != ""))

    @classmethod
    def of(cls, mapping: Mapping[str, str] | None = None, /, **kwargs: str) -> Labels:
        """Build from a mapping and/or keyword arguments."""
        merged = dict(mapping or {})
        merged.update(kwargs)
        return cls(merged.items())

    @property
    def name(self) -> str:
        """The metric name (``__name__``), or ``""``."""
        return self.get(METRIC_NAME)

    def get(self, name: str, default: str = "") -> str:
        """The value of label ``name``, or ``default``."""
        for n, v in self:
            if n == name:
                return v
        return default

    def to_dict(self) -> dict[str, str]:
        """A plain ``dict`` copy."""
        return dict(self)

    def names(self) -> list[str]:
        """The label names, sorted."""
        return [n for n, _ in self]

    def without(self, *names: str) -> Labels:
        """A copy without the given label names."""
        drop = set(names)
        return Labels((n, v) for n, v in self if n not in drop)

    def without_name(self) -> Labels:
        """A copy without ``__name__``."""
        return self.without(METRIC_NAME)

    def only(self, *names: str) -> Labels:
        """A copy with just the given label names."""
        keep = set(names)
        return Labels((n, v) for n, v in self if n in keep)

    def with_(self, mapping: Mapping[str, str] | None = None, /, **kwargs: str) -> Labels:
        """A copy with labels set (an empty value removes the label)."""
        merged = dict(self)
        merged.update(mapping or {})
        merged.update(kwargs)
        return Labels(merged.items())

    def __str__(self) -> str:
        name = self.name
        inner = ", ".join(f'{n}="{_escape(v)}"' for n, v in self if n != METRIC_NAME)
        if name and not inner:
            return name
        return f"{name}{{{inner}}}"

    def __repr__(self) -> str:
        return f"Labels({self.to_dict()!r})"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MatchType(Enum):
    """The four PromQL label matcher operators."""

    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """A label matcher such as ``job=~"api|web"``; regexes are fully anchored."""

    type: MatchType
    name: str
    value: str
    _regex: Regex | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.type in (MatchType.REGEX, MatchType.NOT_REGEX):
            # Raises RegexError (a re.error) where Prometheus refuses the pattern.
            object.__setattr__(self, "_regex", compile_regex(self.value))

    @classmethod
    def equal(cls, name: str, value: str) -> Matcher:
        """Shorthand for ``name="value"``."""
        return cls(MatchType.EQUAL, name, value)

    def matches(self, value: str) -> bool:
        """Whether a label value (``""`` when absent) satisfies this matcher."""
        if self.type is MatchType.EQUAL:
            return value == self.value
        if self.type is MatchType.NOT_EQUAL:
            return value != self.value
        assert self._regex is not None
        hit = self._regex.fullmatch(value)
        return hit if self.type is MatchType.REGEX else not hit

    def matches_labels(self, labels: Labels) -> bool:
        """Whether a label set satisfies this matcher."""
        return self.matches(labels.get(self.name))

    def __str__(self) -> str:
        return f'{self.name}{self.type.value}"{_escape(self.value)}"'


def matches_all(matchers: Iterable[Matcher], labels: Labels) -> bool:
    """Whether ``labels`` satisfies every matcher."""
    return all(m.matches(labels.get(m.name)) for m in matchers)


@dataclass
class Series:
    """One series' samples in a time range, oldest first.

    ``timestamps`` are milliseconds; ``values`` may contain :data:`STALE_NAN`.
    """

    labels: Labels
    timestamps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        return zip(self.timestamps, self.values, strict=True)

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass(slots=True)
class ArraySeries:
    """One series' samples in compact buffers (``array('q')`` ms, doubles), oldest first.

    What a storage hands the query engine: indexing gives plain ints and
    floats, and numpy reads the buffers without a step per sample. The
    values are an ``array('d')`` or a read-only ``memoryview`` of doubles
    (the TSDB's: a view of its head, not a copy).
    """

    labels: Labels
    timestamps: array[int]
    values: Sequence[float]

    def __len__(self) -> int:
        return len(self.timestamps)


def names_of(label_sets: Iterable[Labels]) -> list[str]:
    """The sorted label names used by ``label_sets`` (what ``/api/v1/labels`` lists)."""
    return sorted({name for labels in label_sets for name, _ in labels})


def values_of(name: str, label_sets: Iterable[Labels]) -> list[str]:
    """The sorted non-empty values of label ``name`` in ``label_sets``."""
    values = {labels.get(name) for labels in label_sets}
    values.discard("")
    return sorted(values)
