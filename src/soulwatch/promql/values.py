"""PromQL result values and the query-engine interface.

A query returns one of :class:`Scalar`, :class:`Vector` (a list of
:class:`Sample`), :class:`Matrix` (a list of :class:`~soulwatch.tsdb.Series`)
or :class:`String`, wrapped in a :class:`QueryResult` together with the
annotations (warnings and infos) Prometheus would attach.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from soulwatch.promql.ast import Expr, ValueType
from soulwatch.tsdb.model import Labels, Series


@dataclass(frozen=True)
class Sample:
    """One element of an instant vector."""

    labels: Labels
    t_ms: int
    value: float


@dataclass(frozen=True)
class Scalar:
    """A scalar result at time ``t_ms``."""

    t_ms: int
    value: float


@dataclass(frozen=True)
class String:
    """A string result at time ``t_ms``."""

    t_ms: int
    value: str


Vector = list[Sample]
Matrix = list[Series]
Value = Scalar | String | Vector | Matrix


@dataclass
class QueryResult:
    """A query's value plus Prometheus-style annotations.

    ``value_type`` says what the value is; an empty list alone cannot tell a
    vector from a matrix. When it is not given it is inferred from the value.
    """

    value: Value
    warnings: list[str] = field(default_factory=list)
    infos: list[str] = field(default_factory=list)
    value_type: ValueType | None = None

    @property
    def result_type(self) -> str:
        """``scalar``, ``string``, ``vector`` or ``matrix`` as the HTTP API names them."""
        if self.value_type is not None:
            return self.value_type.value
        if isinstance(self.value, Scalar):
            return "scalar"
        if isinstance(self.value, String):
            return "string"
        if self.value and isinstance(self.value[0], Series):
            return "matrix"
        return "vector"


@runtime_checkable
class QueryEngine(Protocol):
    """Instant and range queries. Times are milliseconds since the epoch.

    Raises :class:`~soulwatch.exceptions.ParseError` for a syntax error and
    :class:`~soulwatch.exceptions.QueryError` subclasses for runtime failures.
    """

    #: How far back an instant selector looks for a sample (milliseconds).
    lookback_delta_ms: int

    def instant(
        self, query: str | Expr, t_ms: int, *, cancel: threading.Event | None = None
    ) -> QueryResult:
        """Evaluate ``query`` at one instant; it stops soon after ``cancel`` is set."""
        ...

    def range(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        cancel: threading.Event | None = None,
    ) -> QueryResult:
        """Evaluate ``query`` at every step from ``start_ms`` to ``end_ms``; returns a matrix.

        It stops soon after ``cancel`` is set.
        """
        ...
