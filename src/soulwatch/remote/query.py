"""Ruler mode: PromQL answered by a remote Prometheus-compatible HTTP API.

With ``query: {remote: {url: ...}}`` in soulwatch.yaml, the rule evaluator,
the console, Explore and ``/api/v1/query`` / ``query_range`` ask a remote
store (VictoriaMetrics, Mimir, Thanos, Prometheus) instead of the embedded
TSDB, as vmalert does: each rule evaluation is one ``/api/v1/query`` at the
evaluation's timestamp. :class:`RemoteMetadata` answers the series and
label listings (``/api/v1/series``, ``labels``, ``label/<name>/values``,
Explore's completion) with the remote's. What the rules produce
(recording-rule series, ``ALERTS``, ``ALERTS_FOR_STATE``) is still written
to the embedded store, and ``remote_write`` carries it, with everything
soulwatch collects itself (probes, heartbeats, collectors), to the remote
store. ``/federate`` and ``/api/v1/status/tsdb`` still describe the embedded
store.

:class:`RemoteQueryEngine` implements :class:`~soulwatch.promql.values.QueryEngine`
over HTTP. A failure to reach the remote (refused, timed out, 5xx) raises
:class:`~soulwatch.exceptions.StorageError` and is kept as
:attr:`RemoteQueryEngine.last_error` until a query succeeds again, which is
how ``/health`` and ``soulwatch_store_failing{store="remote_query"}`` show
it. A rule whose query fails keeps its alerts as they are: no data is not
"resolved". :class:`RulerReads` answers the evaluator's own reads (is a
rule's source down, are its inputs present) from the remote as well.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from soulwatch import __version__
from soulwatch.duration import Duration
from soulwatch.exceptions import ConfigError, QueryLimitError, RemoteAnswerError, StorageError
from soulwatch.http_auth import ClientSettings, authorization_header
from soulwatch.promql.ast import Expr
from soulwatch.promql.printer import go_quote, to_string
from soulwatch.promql.values import QueryEngine, QueryResult, Sample, Scalar, String, Value
from soulwatch.remote.queue import redact_url
from soulwatch.sources.scrape.manager import ssl_context
from soulwatch.tsdb.model import Labels, Matcher, Series
from soulwatch.tsdb.storage import Appender, SeriesIndex, Storage


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RemoteQueryConfig(ClientSettings):
    """``query.remote``: the Prometheus-compatible HTTP API rules and the console query.

    ``url`` is the API's base, the part before ``/api/v1/query``:
    ``http://victoria:8428`` (VictoriaMetrics), ``http://mimir/prometheus``
    (Mimir), ``http://thanos-query:10902``, ``http://prometheus:9090``.
    Authentication and TLS take the keys of a ``remote_write`` entry.
    """

    url: str
    timeout: Duration = 30.0
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"url must be an http:// or https:// URL with a host, got {value!r}")
        if parts.path.rstrip("/").endswith("/api/v1/query"):
            raise ValueError(
                f"url is the API's base, without /api/v1/query: {value.split('/api/v1', 1)[0]!r}"
            )
        return value.rstrip("/")

    @field_validator("timeout")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("timeout must be positive")
        return value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        bad = sorted(h for h in value if h.lower() in {"authorization", "host", "user-agent"})
        if bad:
            raise ValueError(f"header(s) {', '.join(bad)} are set by soulwatch and may not be set")
        return value


class QueryConfig(_Model):
    """``query``: where PromQL is answered; unset ``remote``, by the embedded TSDB."""

    remote: RemoteQueryConfig | None = None


def _client(config: RemoteQueryConfig, transport: httpx.BaseTransport | None) -> httpx.Client:
    """The HTTP client; raises ConfigError for an unreadable secret or CA file."""
    headers = {**config.headers, "User-Agent": f"soulwatch/{__version__}"}
    credentials = authorization_header(config, "query.remote")
    if credentials is not None:
        headers["Authorization"] = credentials
    verify: Any = True
    if config.url.startswith("https://") or config.tls_config is not None:
        try:
            verify = ssl_context(config.tls_config)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"query.remote: tls_config: {exc}") from None
    return httpx.Client(
        transport=transport,
        headers=headers,
        verify=verify,
        timeout=config.timeout,
        follow_redirects=config.follow_redirects,
        trust_env=False,
    )


class RemoteQueryEngine:
    """A :class:`~soulwatch.promql.values.QueryEngine` that asks a remote PromQL HTTP API.

    Calls are synchronous (the monitor runs them off the event loop) and
    thread-safe. Times are milliseconds since the epoch, sent as seconds.
    """

    def __init__(
        self,
        config: RemoteQueryConfig,
        *,
        lookback_delta_ms: int = 300_000,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        #: How far back an instant selector looks; the remote applies its own,
        #: soulwatch uses this one for the windows it reads itself.
        self.lookback_delta_ms = lookback_delta_ms
        self.url = config.url
        self._client = _client(config, transport)
        self._lock = threading.Lock()
        self._last_error: str | None = None
        #: Failed requests to the remote (unreachable, timed out, 5xx).
        self.failures = 0

    @property
    def last_error(self) -> str | None:
        """Why the last query could not reach the remote, or ``None`` once one did."""
        return self._last_error

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()

    def instant(
        self, query: str | Expr, t_ms: int, *, cancel: threading.Event | None = None
    ) -> QueryResult:
        """``/api/v1/query`` at ``t_ms`` (``cancel``: see :meth:`_query`)."""
        return self._query(cancel, "/api/v1/query", {"query": _text(query), "time": _seconds(t_ms)})

    def range(
        self,
        query: str | Expr,
        start_ms: int,
        end_ms: int,
        step_ms: int,
        *,
        cancel: threading.Event | None = None,
    ) -> QueryResult:
        """``/api/v1/query_range`` from ``start_ms`` to ``end_ms`` every ``step_ms``."""
        params = {
            "query": _text(query),
            "start": _seconds(start_ms),
            "end": _seconds(end_ms),
            "step": _seconds(step_ms),
        }
        return self._query(cancel, "/api/v1/query_range", params)

    def _query(
        self, cancel: threading.Event | None, path: str, params: dict[str, str]
    ) -> QueryResult:
        # A request in flight is bounded by the client's timeout; one whose caller
        # already gave up (a cancelled API query) is not sent at all.
        if cancel is not None and cancel.is_set():
            raise QueryLimitError("query was cancelled before it reached the remote")
        body = self.answer("POST", path, list(params.items()))
        try:
            return _decode(body)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise self.malformed(path, exc) from None

    def answer(self, method: str, path: str, params: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """The remote API's successful JSON answer to ``method path`` with ``params``.

        Raises :class:`StorageError` when the remote cannot answer (counted in
        :attr:`failures`, kept as :attr:`last_error`), :class:`QueryLimitError`
        for its ``timeout`` and :class:`RemoteAnswerError` for its other errors.
        """
        where = redact_url(self.url + path)
        try:
            if method == "GET":
                response = self._client.get(self.url + path, params=tuple(params))
            else:
                response = self._client.post(self.url + path, data=dict(params))
        except httpx.HTTPError as exc:
            self._failed(f"{where}: {type(exc).__name__}: {exc}")
            raise StorageError(f"remote query {where}: {exc or type(exc).__name__}") from None
        if (response.status_code >= 500 and response.status_code != 503) or not _json(response):
            # A JSON answer is the API's own (a 503 "timeout", a 422 "execution"):
            # the remote is up. Anything else (a proxy's 502, a 404 page for a
            # wrong url) means it cannot answer queries.
            self._failed(f"{where}: HTTP {response.status_code}")
            raise StorageError(f"remote query {where}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise self.malformed(path, exc) from None
        if not isinstance(body, dict):
            raise self.malformed(path, TypeError("not a JSON object"))
        with self._lock:
            self._last_error = None
        if body.get("status") != "success":
            message = f"remote query: {body.get('error') or 'failed'}"
            kind = str(body.get("errorType") or "execution")
            if kind == "timeout":
                raise QueryLimitError(message)
            raise RemoteAnswerError(message, error_type=kind)
        return body

    def malformed(self, path: str, exc: Exception) -> StorageError:
        """The error for an answer of ``path`` soulwatch cannot read, counted as a failure."""
        where = redact_url(self.url + path)
        self._failed(f"{where}: malformed answer")
        return StorageError(f"remote query {where}: malformed answer ({exc})")

    def _failed(self, error: str) -> None:
        with self._lock:
            self._last_error = error
            self.failures += 1


def _json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")


def _text(query: str | Expr) -> str:
    return query if isinstance(query, str) else to_string(query)


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.3f}"


_SPECIAL = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}


def _float(text: str) -> float:
    # The API writes NaN and infinities as Go does.
    special = _SPECIAL.get(text)
    return special if special is not None else float(text)


def _decode(body: dict[str, Any]) -> QueryResult:
    data = body["data"]
    kind = data["resultType"]
    result = data["result"]
    value: Value
    if kind == "scalar":
        value = Scalar(round(float(result[0]) * 1000), _float(result[1]))
    elif kind == "string":
        value = String(round(float(result[0]) * 1000), str(result[1]))
    elif kind == "vector":
        value = [
            Sample(
                Labels(item["metric"].items()),
                round(float(item["value"][0]) * 1000),
                _float(item["value"][1]),
            )
            for item in result
        ]
    elif kind == "matrix":
        value = [
            Series(
                Labels(item["metric"].items()),
                [round(float(t) * 1000) for t, _ in item.get("values", [])],
                [_float(v) for _, v in item.get("values", [])],
            )
            for item in result
        ]
    else:
        raise ValueError(f"unknown resultType {kind!r}")
    return QueryResult(
        value, warnings=list(body.get("warnings") or []), infos=list(body.get("infos") or [])
    )


def selector(matchers: Sequence[Matcher]) -> str:
    """``matchers`` as a PromQL selector (``{__name__="up",job="x"}``)."""
    inner = ",".join(f"{m.name}{m.type.value}{go_quote(m.value)}" for m in matchers)
    return "{" + inner + "}"


#: The bound the API passes for a series read with no ``start`` or ``end``:
#: the remote is then asked without that parameter (its own default).
_UNBOUNDED_MS = 2**62


class RemoteMetadata:
    """The remote's series and label listings: :class:`~soulwatch.tsdb.storage.SeriesIndex`.

    ``/api/v1/series``, ``/api/v1/labels`` and ``/api/v1/label/<name>/values``
    of the remote, one request per matcher set, through the engine's client,
    so credentials, timeouts and the health of ``remote_query`` are shared.
    """

    def __init__(self, remote: RemoteQueryEngine) -> None:
        self._remote = remote

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """The remote's label sets of the series matching ``matchers`` in the range."""
        params = [("match[]", selector(matchers)), *_bounds(mint_ms, maxt_ms)]
        data = self._data("/api/v1/series", params)
        try:
            return sorted({Labels(item.items()) for item in data})
        except (AttributeError, TypeError, ValueError) as exc:
            raise self._remote.malformed("/api/v1/series", exc) from None

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """The remote's label names, of the series matching ``matchers`` if any are given."""
        return self._strings("/api/v1/labels", matchers, mint_ms, maxt_ms)

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """The remote's values of label ``name``, of the series matching ``matchers`` if given."""
        return self._strings(f"/api/v1/label/{name}/values", matchers, mint_ms, maxt_ms)

    def _strings(
        self, path: str, matchers: Sequence[Matcher], mint_ms: int | None, maxt_ms: int | None
    ) -> list[str]:
        params = [("match[]", selector(matchers))] if matchers else []
        data = self._data(path, [*params, *_bounds(mint_ms, maxt_ms)])
        if not all(isinstance(item, str) for item in data):
            raise self._remote.malformed(path, TypeError("a list of strings was expected"))
        return sorted(set(data))

    def _data(self, path: str, params: list[tuple[str, str]]) -> list[Any]:
        data = self._remote.answer("GET", path, params).get("data")
        if data is None:  # Prometheus answers an empty listing with null
            return []
        if not isinstance(data, list):
            raise self._remote.malformed(path, TypeError("data is not a list"))
        return data


def _bounds(mint_ms: int | None, maxt_ms: int | None) -> list[tuple[str, str]]:
    out = []
    if mint_ms is not None and mint_ms > -_UNBOUNDED_MS:
        out.append(("start", _seconds(mint_ms)))
    if maxt_ms is not None and maxt_ms < _UNBOUNDED_MS:
        out.append(("end", _seconds(maxt_ms)))
    return out


class RulerReads:
    """The evaluator's storage in ruler mode: writes go to the embedded store, reads to the remote.

    Rules write their results (recording rules, ``ALERTS``) into the embedded
    store, from which ``remote_write`` sends them on. What the evaluator reads
    itself (whether a rule's inputs are present, whether its source's ``up``
    is 0) lives in the remote store, so it is read there, with a range
    selector at the window's end.
    """

    def __init__(self, local: Storage, remote: RemoteQueryEngine) -> None:
        self._local = local
        self._remote = remote

    def appender(self, source: str = "") -> Appender:
        """An appender of the embedded store."""
        return self._local.appender(source)

    def select(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> Iterator[Series]:
        """The remote's samples of the matching series in ``[mint_ms, maxt_ms]``."""
        window = max(1, maxt_ms - mint_ms + 1)
        result = self._remote.instant(f"{selector(matchers)}[{window}ms]", maxt_ms)
        series = result.value if isinstance(result.value, list) else []
        for item in sorted(series, key=lambda s: tuple(s.labels)):
            if isinstance(item, Series) and item.values:
                yield item

    def series(self, matchers: Sequence[Matcher], mint_ms: int, maxt_ms: int) -> list[Labels]:
        """Label sets of the remote's matching series with samples in the range."""
        return [s.labels for s in self.select(matchers, mint_ms, maxt_ms)]

    def label_names(
        self,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """The embedded store's label names (the evaluator does not list labels)."""
        return self._local.label_names(matchers, mint_ms, maxt_ms)

    def label_values(
        self,
        name: str,
        matchers: Sequence[Matcher] = (),
        mint_ms: int | None = None,
        maxt_ms: int | None = None,
    ) -> list[str]:
        """The embedded store's label values (the evaluator does not list labels)."""
        return self._local.label_values(name, matchers, mint_ms, maxt_ms)


@dataclass(frozen=True)
class Ruler:
    """What queries and what the evaluator reads: the embedded ones, or the remote's."""

    engine: QueryEngine
    storage: Storage
    remote: RemoteQueryEngine | None = None
    #: What series and label listings read (the API's and Explore's pickers).
    index: SeriesIndex | None = None

    @property
    def health_checks(self) -> dict[str, Callable[[], str | None]]:
        """``remote_query``'s check for the store health (none without a remote)."""
        remote = self.remote
        return {} if remote is None else {"remote_query": lambda: remote.last_error}


def ruler_mode(
    config: RemoteQueryConfig | None,
    storage: Storage,
    engine: QueryEngine,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Ruler:
    """The embedded ``engine`` and ``storage``, or with ``config`` the remote's."""
    if config is None:
        return Ruler(engine, storage)
    remote = RemoteQueryEngine(
        config, lookback_delta_ms=engine.lookback_delta_ms, transport=transport
    )
    return Ruler(remote, RulerReads(storage, remote), remote, RemoteMetadata(remote))
