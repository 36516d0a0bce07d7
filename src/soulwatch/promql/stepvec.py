"""The engine's internal values: every node is evaluated at all steps at once.

A range query at 241 steps and an instant query (one step) go through the
same code. An instant vector over the steps is a list of :class:`StepSeries`
(one value slot per step, ``None`` where the series has no sample); a scalar
is one float per step; a range vector is a list of :class:`RangeSeries` with
raw samples. Keeping a whole series together lets label work (matching
signatures, grouping keys) happen once per series instead of once per step.

``drop_name`` implements Prometheus 3's delayed ``__name__`` removal: an
operation that would drop the metric name only flags the series, and the
name goes when the result leaves the engine (or when an aggregation groups).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from typing import Any

from soulwatch.exceptions import EvaluationError
from soulwatch.tsdb.model import METRIC_NAME, Labels

DUPLICATE_LABELSET = "vector cannot contain metrics with the same labelset"


class StepSeries:
    """One series of an instant vector, with one value slot per step.

    ``column``, when the array path computed the values of a range query, is
    the row as ``(float64 values, validity mask, valid at every step)``; it is
    then the series' own representation, and ``vals`` (a Python float or
    ``None`` per step) is built from it the first time someone reads it, so
    array code feeding array code never converts. A value under a false mask
    bit is meaningless. Whoever changes ``vals`` builds a new series (the
    cached list and the column would disagree otherwise).
    """

    __slots__ = ("column", "drop_name", "labels", "vals")

    #: The value at each step, ``None`` where there is none. A plain slot,
    #: read at C speed in the per-step loops; left unset for a series built
    #: from a column until :meth:`__getattr__` fills it on the first read.
    vals: list[float | None]

    def __init__(
        self,
        labels: Labels,
        vals: list[float | None] | None,
        drop_name: bool = False,
        column: Column | None = None,
    ) -> None:
        if vals is not None:
            self.vals = vals
        elif column is None:
            raise ValueError("a step series needs its values or its column")
        self.labels = labels
        self.drop_name = drop_name
        self.column = column

    @classmethod
    def of_column(
        cls, labels: Labels, values: Any, valid: Any, drop_name: bool = False
    ) -> StepSeries:
        """A series held as arrays: ``values`` (float64) where ``valid`` (bool) is set."""
        return cls(labels, None, drop_name, (values, valid, bool(valid.all())))

    def __getattr__(self, name: str) -> Any:
        # Only reached while the ``vals`` slot is unset: build it from the column, once.
        if name != "vals" or self.column is None:
            raise AttributeError(name)
        vals = self.vals = column_list(self.column)
        return vals

    def relabelled(self, labels: Labels, drop_name: bool = False) -> StepSeries:
        """The same values (list or column, unconverted) under other labels."""
        if self.column is not None:
            return StepSeries(labels, None, drop_name, self.column)
        return StepSeries(labels, self.vals, drop_name)

    def __repr__(self) -> str:
        return f"StepSeries({self.labels!r}, {self.vals!r}, {self.drop_name!r})"


#: A step series' arrays: ``(float64 values, bool validity, valid at every step)``.
Column = tuple[Any, Any, bool]


def column_list(column: Column) -> list[float | None]:
    """The Python values of one column, ``None`` where it is not valid.

    One row at a time (a bounded conversion): ``tolist`` gives exact Python
    floats, and only the invalid steps are then visited.
    """
    values, valid, full = column
    out: list[float | None] = values.tolist()
    if not full:
        for index in (~valid).nonzero()[0].tolist():
            out[index] = None
    return out


@dataclass(slots=True)
class RangeSeries:
    """One series of a range vector: sorted sample times (ms) and values."""

    labels: Labels
    ts: Sequence[int]
    vals: Sequence[float]
    drop_name: bool = False


@dataclass(slots=True)
class ScalarSteps:
    """A scalar: one value per step."""

    vals: list[float]


@dataclass(slots=True)
class StringValue:
    """A string literal's value."""

    value: str


@dataclass(slots=True)
class RangeValue:
    """A range vector (the value of a matrix selector or a subquery)."""

    series: list[RangeSeries]


StepValue = list[StepSeries] | ScalarSteps | StringValue | RangeValue


@dataclass
class Annotations:
    """Warnings and infos collected during one query, deduplicated, in order."""

    query: str = ""
    warnings: dict[str, None] = field(default_factory=dict)
    infos: dict[str, None] = field(default_factory=dict)

    def where(self, pos: int) -> str:
        """``(line:column)`` of a 0-based offset in the query text, as Prometheus prints it."""
        before = self.query[:pos]
        line = before.count("\n") + 1
        column = pos - (before.rfind("\n") + 1) + 1
        return f"({line}:{column})"

    def warn(self, message: str, pos: int) -> None:
        """Record ``PromQL warning: message (line:col)``."""
        self.warnings[f"PromQL warning: {message} {self.where(pos)}"] = None

    def info(self, message: str, pos: int) -> None:
        """Record ``PromQL info: message (line:col)``."""
        self.infos[f"PromQL info: {message} {self.where(pos)}"] = None


def sorted_labels(pairs: Iterable[tuple[str, str]]) -> Labels:
    """A :class:`Labels` from pairs already sorted and non-empty (a subset of a label set).

    Skips the sort and the empty-value filter of ``Labels()``: label work is
    the engine's hottest path.
    """
    return tuple.__new__(Labels, pairs)


def drop_labels(labels: Labels, names: frozenset[str]) -> Labels:
    """``labels`` without ``names``."""
    return tuple.__new__(Labels, [p for p in labels if p[0] not in names])


def keep_labels(labels: Labels, names: frozenset[str]) -> Labels:
    """Only the ``names`` of ``labels``."""
    return tuple.__new__(Labels, [p for p in labels if p[0] in names])


_LABELS = attrgetter("labels")

NAME_ONLY = frozenset({METRIC_NAME})
#: With type-and-unit labels, the labels that go together with the name.
METADATA_LABELS = frozenset({METRIC_NAME, "__type__", "__unit__"})


def merge_same_labels(series: list[StepSeries]) -> list[StepSeries]:
    """Merge series that ended up with the same labels; overlap at a step is an error.

    Prometheus collects per-step results into series by label set and fails
    when one step holds two samples with the same labels.
    """
    if len(set(map(_LABELS, series))) == len(series):
        # No two alike (the usual case): nothing to merge, checked in C.
        return list(series)
    seen: dict[Labels, int] = {}
    out: list[StepSeries] = []
    copied: set[int] = set()
    for s in series:
        index = seen.get(s.labels)
        if index is None:
            seen[s.labels] = len(out)
            out.append(s)
            continue
        if index not in copied:
            # Inputs may be shared (cached subexpressions): merge into a copy.
            first = out[index]
            out[index] = StepSeries(first.labels, list(first.vals), first.drop_name)
            copied.add(index)
        pv = out[index].vals
        for i, v in enumerate(s.vals):
            if v is None:
                continue
            if pv[i] is not None:
                raise EvaluationError(DUPLICATE_LABELSET)
            pv[i] = v
    return out


def finalize_names(
    series: list[StepSeries], metadata: frozenset[str] = NAME_ONLY
) -> list[StepSeries]:
    """Drop ``__name__`` (and the other ``metadata``) from flagged series, then merge."""
    if not any(s.drop_name for s in series):
        return series
    out = []
    new = tuple.__new__
    name_only = metadata == NAME_ONLY
    for s in series:
        if not s.drop_name:
            out.append(s)
            continue
        # drop_labels and relabelled, inlined: this runs for every series a function returns.
        labels = s.labels
        if name_only and labels and labels[0][0] == METRIC_NAME:
            # Sorted labels: the name, when first, is cut off in one slice.
            labels = new(Labels, labels[1:])
        else:
            labels = new(Labels, [p for p in labels if p[0] not in metadata])
        column = s.column
        out.append(StepSeries(labels, s.vals if column is None else None, False, column))
    return merge_same_labels(out)


def kahan_inc(inc: float, total: float, c: float) -> tuple[float, float]:
    """One step of Kahan-Neumaier summation, as Prometheus sums floats."""
    t = total + inc
    if math.isinf(t):
        c = 0.0
    elif abs(total) >= abs(inc):
        c += (total - t) + inc
    else:
        c += (inc - t) + total
    return t, c


def format_float(value: float) -> str:
    """A float as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text or "E" in text:
        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text
