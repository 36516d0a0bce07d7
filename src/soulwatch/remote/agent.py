"""Agent mode: what the API reads when soulwatch keeps no queryable store.

An agent (``soulwatch run --agent`` or ``mode: agent``) scrapes, probes,
runs heartbeats and collectors, and sends every sample by remote write; its
TSDB is a write-ahead log only (``TSDB(wal_only=True)``). Queries, series
and label listings answer an error saying so, as Prometheus's agent mode
answers "unavailable with Prometheus Agent", while writes (push, OTLP, RUM)
still reach the WAL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

from soulwatch.exceptions import QueryError
from soulwatch.promql.ast import Expr
from soulwatch.promql.values import QueryResult
from soulwatch.tsdb.model import Labels, Matcher, Series
from soulwatch.tsdb.storage import Appender, Storage

#: What every read of an agent answers.
AGENT_MESSAGE = (
    "unavailable in agent mode: this soulwatch keeps no queryable data and only "
    "remote-writes its samples; query the remote_write receiver instead"
)


class AgentModeError(QueryError):
    """A query or series read asked of an agent (the API answers 422 ``execution``)."""

    def __init__(self) -> None:
        super().__init__(AGENT_MESSAGE)


class AgentStorage:
    """``storage`` seen through an agent: appends pass through, every read raises."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def appender(self, source: str = "") -> Appender:
        """An appender of the underlying storage (pushed samples go to the WAL)."""
        return self._storage.appender(source)

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError


class AgentEngine:
    """A query engine that answers every query with :class:`AgentModeError`."""

    def __init__(self, lookback_delta_ms: int) -> None:
        self.lookback_delta_ms = lookback_delta_ms

    def instant(
        self, query: str | Expr, t_ms: int, *, cancel: threading.Event | None = None
    ) -> QueryResult:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError

    def range(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        cancel: threading.Event | None = None,
    ) -> QueryResult:
        """Raises :class:`AgentModeError`."""
        raise AgentModeError
