"""Prometheus's HTTP API, so Grafana's Prometheus data source works unchanged.

``/api/v1/query``, ``query_range``, ``series``, ``labels``,
``label/<name>/values``, ``rules``, ``alerts``, ``targets``,
``status/buildinfo`` (plus empty ``metadata`` and ``query_exemplars``, which
Grafana asks for) answer with Prometheus's JSON shapes, error types and
status codes. Queries and storage reads block, so they run through the
monitor's runner (worker threads); a query past its timeout answers
``503 timeout``; its evaluation is cancelled then, or as soon as its client
disconnects, so its thread is soon free. In ruler mode queries and the series
and label listings are the remote store's (``ctx.engine``,
``ctx.series_index``), its errors passed through.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soulwatch import __version__
from soulwatch.api.auth import Authenticator
from soulwatch.api.cancel import ClientGone, run_until_unwanted
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.api.envelope import prometheus_endpoint
from soulwatch.api.http import (
    ApiError,
    ErrorType,
    first,
    form_params,
    format_time,
    format_value,
    parse_step,
    parse_time,
)
from soulwatch.api.selectors import SelectorError, parse_selector
from soulwatch.exceptions import (
    ParseError,
    QueryError,
    QueryLimitError,
    RemoteAnswerError,
    StorageError,
)
from soulwatch.promql.ast import MatrixSelector, ParenExpr, StringLiteral, SubqueryExpr
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.promql.values import QueryResult, Scalar, String
from soulwatch.remote.agent import AGENT_MESSAGE
from soulwatch.sources.scrape.parse import MetricMetadata
from soulwatch.tsdb.model import Labels, Matcher, Series

_T = TypeVar("_T")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")

Handler = Callable[[Request], Any]


def _success(data: Any, result: QueryResult | None = None) -> Response:
    return JSONResponse(_success_body(data, result))


def _success_body(data: Any, result: QueryResult | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "data": data}
    if result is not None and result.warnings:
        body["warnings"] = result.warnings
    if result is not None and result.infos:
        body["infos"] = result.infos
    return body


def _query_answer(result: QueryResult, *, matrix: bool) -> bytes:
    """A query's whole answer as JSON, encoded one series at a time.

    A range query's answer can take a second to encode; in one ``json.dumps``
    call that second holds the GIL, and the event loop waits for it. A
    matrix's points are written as text by Python code (:func:`_series_json`),
    which lets the loop in at every switch interval, and without a list per
    point for the garbage collector to walk.
    """
    if matrix or result.result_type == "matrix":
        value = result.value
        if not isinstance(value, (Scalar, String)):
            parts = [_series_json(s) for s in value if isinstance(s, Series)]
            return _with_result(_success_body({"resultType": "matrix"}, result), parts)
    data = _encode(result, matrix=matrix)
    items = data["result"]
    if not (isinstance(items, list) and items and isinstance(items[0], dict)):
        return _dumps(_success_body(data, result))
    return _with_result(_success_body(data, result), [_dumps(item) for item in items])


def _with_result(body: dict[str, Any], parts: list[bytes]) -> bytes:
    """``body`` as JSON with ``data.result`` the array of the encoded ``parts``."""
    # The one place the series go; a string no encoded key or value can equal.
    marker = "\x00result\x00"
    head = _dumps({**body, "data": {**body["data"], "result": marker}})
    before, after = head.split(_dumps(marker), 1)
    return b"".join((before, b"[", b",".join(parts), b"]", after))


def _series_json(series: Series) -> bytes:
    """One matrix series as ``_dumps(_series(series))`` writes it, point by point as text.

    A timestamp is an int or a float (its ``repr`` is its JSON), a value one
    of Prometheus's number strings (digits, ``.``, ``-``, ``NaN``, ``Inf``:
    nothing to escape).
    """
    points = ",".join([f'[{format_time(t)!r},"{format_value(v)}"]' for t, v in series])
    return b'{"metric":%s,"values":[%s]}' % (_dumps(series.labels.to_dict()), points.encode())


def _dumps(value: Any) -> bytes:
    # As Starlette's JSONResponse renders.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class PrometheusApi:
    """The handlers, bound to one :class:`ApiContext`."""

    def __init__(self, ctx: ApiContext, auth: Callable[[], Authenticator]) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette routes of this API."""
        both = ["GET", "POST"]
        return [
            Route("/api/v1/query", self._wrap(self.query), methods=both),
            Route("/api/v1/query_range", self._wrap(self.query_range), methods=both),
            Route("/api/v1/series", self._wrap(self.series), methods=both),
            Route("/api/v1/labels", self._wrap(self.labels), methods=both),
            Route("/api/v1/label/{name}/values", self._wrap(self.label_values), methods=["GET"]),
            Route("/api/v1/rules", self._wrap(self.rules), methods=["GET"]),
            Route("/api/v1/alerts", self._wrap(self.alerts), methods=["GET"]),
            Route("/api/v1/targets", self._wrap(self.targets), methods=["GET"]),
            Route("/api/v1/alertmanagers", self._wrap(self.alertmanagers), methods=["GET"]),
            Route("/api/v1/status/buildinfo", self._wrap(self.buildinfo), methods=["GET"]),
            Route("/api/v1/metadata", self._wrap(self.metadata), methods=["GET"]),
            Route("/api/v1/targets/metadata", self._wrap(self.targets_metadata), methods=["GET"]),
            Route("/api/v1/query_exemplars", self._wrap(self.exemplars), methods=both),
        ]

    def _wrap(self, handler: Callable[[Request], Any]) -> Callable[[Request], Any]:
        return prometheus_endpoint(handler, self._auth)

    async def _params(self, request: Request) -> list[tuple[str, str]]:
        return await form_params(request, self.ctx.api.max_body_bytes)

    def _now_ms(self) -> int:
        return round(self.ctx.clock.time() * 1000)

    async def _evaluate(
        self,
        request: Request,
        fn: Callable[[threading.Event], QueryResult],
        timeout: float,
        *,
        matrix: bool,
    ) -> Response:
        """Evaluate and encode a query off the event loop (a range query's JSON takes
        as long as a query); once nobody waits for it (timeout, client gone), it stops."""
        try:
            body = await self._run(
                lambda cancel: _query_answer(fn(cancel), matrix=matrix), timeout, request
            )
        except ClientGone:
            return Response(status_code=499)  # nobody reads it: nginx's "client closed request"
        return Response(body, media_type="application/json")

    async def _read(self, fn: Callable[[], _T]) -> _T:
        return await self._run(lambda _: fn(), self.ctx.api.query_timeout)

    async def _run(
        self, fn: Callable[[threading.Event], _T], timeout: float, request: Request | None = None
    ) -> _T:
        try:
            return await run_until_unwanted(self.ctx.runner, fn, timeout, request)
        except TimeoutError:
            raise ApiError(ErrorType.TIMEOUT, "query timed out in expression evaluation") from None
        except ParseError as exc:
            raise ApiError(ErrorType.BAD_DATA, f'invalid parameter "query": {exc}') from None
        except QueryLimitError as exc:
            # Prometheus answers a query past its timeout with 503 "timeout",
            # and one past the sample limit with 422 "execution".
            kind = ErrorType.TIMEOUT if "timed out" in str(exc) else ErrorType.EXECUTION
            raise ApiError(kind, str(exc)) from None
        except RemoteAnswerError as exc:
            # Ruler mode: the remote's own error, with its type (Prometheus's shape).
            raise ApiError(_error_type(exc.error_type), str(exc)) from None
        except QueryError as exc:
            raise ApiError(ErrorType.EXECUTION, str(exc)) from None
        except StorageError as exc:
            raise ApiError(ErrorType.INTERNAL, str(exc)) from None

    def _timeout(self, params: list[tuple[str, str]]) -> float:
        limit = self.ctx.api.query_timeout
        given = first(params, "timeout")
        if given:
            return min(limit, parse_step(given, "timeout"))
        return limit

    # -- queries --------------------------------------------------------------

    async def query(self, request: Request) -> Response:
        """``/api/v1/query``: an instant query."""
        params = await self._params(request)
        query = first(params, "query") or ""
        t = first(params, "time")
        t_ms = _time_param(t, "time") if t else self._now_ms()
        timeout = self._timeout(params)
        kind = _expression_type(query)
        return await self._evaluate(
            request,
            lambda cancel: self.ctx.engine.instant(query, t_ms, cancel=cancel),
            timeout,
            matrix=kind == "range vector",
        )

    async def query_range(self, request: Request) -> Response:
        """``/api/v1/query_range``: a range query."""
        params = await self._params(request)
        start = parse_time(first(params, "start") or "", "start")
        end = parse_time(first(params, "end") or "", "end")
        if end < start:
            raise ApiError(
                ErrorType.BAD_DATA,
                'invalid parameter "end": end timestamp must not be before start time',
            )
        step = parse_step(first(params, "step") or "", "step")
        if step <= 0:
            raise ApiError(
                ErrorType.BAD_DATA,
                'invalid parameter "step": zero or negative query resolution step widths '
                "are not accepted. Try a positive integer",
            )
        step_ms = int(step * 1000)
        limit = self.ctx.api.max_points_per_series
        if step_ms <= 0 or (end - start) / step_ms > limit:
            raise ApiError(
                ErrorType.BAD_DATA,
                f"exceeded maximum resolution of {limit:,} points per timeseries. "
                "Try decreasing the query resolution (?step=XX)",
            )
        query = first(params, "query") or ""
        timeout = self._timeout(params)
        kind = _expression_type(query)
        if kind in ("range vector", "string"):
            raise ApiError(
                ErrorType.BAD_DATA,
                f'invalid expression type "{kind}" for range query, '
                "must be Scalar or instant Vector",
            )
        return await self._evaluate(
            request,
            lambda cancel: self.ctx.engine.range(query, start, end, step_ms, cancel=cancel),
            timeout,
            matrix=True,
        )

    # -- metadata ---------------------------------------------------------------

    def _range(self, params: list[tuple[str, str]]) -> tuple[int | None, int | None]:
        start = first(params, "start")
        end = first(params, "end")
        mint = _time_param(start, "start") if start else None
        maxt = _time_param(end, "end") if end else None
        return mint, maxt

    @staticmethod
    def _inverted(mint: int | None, maxt: int | None) -> bool:
        """An ``end`` before ``start`` selects nothing (Prometheus answers an empty list)."""
        return mint is not None and maxt is not None and maxt < mint

    @staticmethod
    def _matchers(params: list[tuple[str, str]]) -> list[list[Matcher]]:
        out = []
        for key, value in params:
            if key != "match[]":
                continue
            try:
                out.append(parse_selector(value))
            except SelectorError as exc:
                raise ApiError(ErrorType.BAD_DATA, f'invalid parameter "match[]": {exc}') from None
        return out

    @staticmethod
    def _limit(params: list[tuple[str, str]]) -> int | None:
        text = first(params, "limit")
        if not text:
            return None
        if not text.isdigit():
            raise ApiError(ErrorType.BAD_DATA, f'invalid parameter "limit": {text!r}')
        return int(text) or None

    async def series(self, request: Request) -> Response:
        """``/api/v1/series``: label sets of matching series."""
        params = await self._params(request)
        sets = self._matchers(params)
        if not sets:
            raise ApiError(ErrorType.BAD_DATA, "no match[] parameter provided")
        mint, maxt = self._range(params)
        if self._inverted(mint, maxt):
            return _success([])
        lo = mint if mint is not None else -(2**62)
        hi = maxt if maxt is not None else 2**62
        index = self.ctx.series_index

        def read() -> list[Labels]:
            found: set[Labels] = set()
            for matchers in sets:
                found.update(index.series(matchers, lo, hi))
            return sorted(found)

        labels = await self._read(read)
        limit = self._limit(params)
        return _success([lbls.to_dict() for lbls in labels[:limit]])

    async def labels(self, request: Request) -> Response:
        """``/api/v1/labels``: label names."""
        params = await self._params(request)
        sets = self._matchers(params) or [[]]
        mint, maxt = self._range(params)
        if self._inverted(mint, maxt):
            return _success([])
        index = self.ctx.series_index

        def read() -> list[str]:
            names: set[str] = set()
            for matchers in sets:
                names.update(index.label_names(matchers, mint, maxt))
            return sorted(names)

        names = await self._read(read)
        return _success(names[: self._limit(params)])

    async def label_values(self, request: Request) -> Response:
        """``/api/v1/label/<name>/values``: values of one label."""
        name = request.path_params["name"]
        if not _LABEL_NAME.match(name):
            raise ApiError(ErrorType.BAD_DATA, f'invalid label name: "{name}"')
        params = list(request.query_params.multi_items())
        sets = self._matchers(params) or [[]]
        mint, maxt = self._range(params)
        if self._inverted(mint, maxt):
            return _success([])
        index = self.ctx.series_index

        def read() -> list[str]:
            values: set[str] = set()
            for matchers in sets:
                values.update(index.label_values(name, matchers, mint, maxt))
            return sorted(values)

        values = await self._read(read)
        return _success(values[: self._limit(params)])

    # -- state of the other components ----------------------------------------------

    def _refuse_in_agent_mode(self) -> None:
        """An agent evaluates no rules and sends no alerts: say so, as Prometheus's agent does."""
        if self.ctx.config is not None and self.ctx.config.mode == "agent":
            raise ApiError(ErrorType.EXECUTION, AGENT_MESSAGE)

    async def rules(self, request: Request) -> Response:
        """``/api/v1/rules``: rule groups with health and alerts (``type`` filters)."""
        self._refuse_in_agent_mode()
        groups = self.ctx.rules.rule_groups() if self.ctx.rules else []
        kind = request.query_params.get("type")
        if kind not in (None, "", "alert", "record"):
            raise ApiError(
                ErrorType.BAD_DATA, f'invalid parameter "type": not supported value "{kind}"'
            )
        if kind:
            wanted = "alerting" if kind == "alert" else "recording"
            groups = [
                {**g, "rules": [r for r in g.get("rules", []) if r.get("type") == wanted]}
                for g in groups
            ]
        return _success({"groups": groups})

    async def alerts(self, request: Request) -> Response:
        """``/api/v1/alerts``: pending and firing alerts."""
        self._refuse_in_agent_mode()
        alerts = self.ctx.rules.alerts() if self.ctx.rules else []
        return _success({"alerts": alerts})

    async def targets(self, request: Request) -> Response:
        """``/api/v1/targets``: scrape targets with health and last error."""
        active = self.ctx.targets.targets() if self.ctx.targets else []
        state = request.query_params.get("state", "any")
        data: dict[str, Any] = {"activeTargets": active, "droppedTargets": []}
        if state == "active":
            data = {"activeTargets": active, "droppedTargets": []}
        elif state == "dropped":
            data = {"activeTargets": [], "droppedTargets": []}
        return _success(data)

    async def alertmanagers(self, request: Request) -> Response:
        """``/api/v1/alertmanagers``: where ``alerting.alertmanagers`` sends alerts."""
        self._refuse_in_agent_mode()
        active = [{"url": url} for url in self.ctx.alertmanager_urls()]
        return _success({"activeAlertmanagers": active, "droppedAlertmanagers": []})

    async def buildinfo(self, request: Request) -> Response:
        """``/api/v1/status/buildinfo``."""
        return _success(
            {
                "version": __version__,
                "revision": "",
                "branch": "",
                "buildUser": "soulwatch",
                "buildDate": "",
                "goVersion": "",
            }
        )

    @staticmethod
    def _metadata_limit(params: list[tuple[str, str]]) -> int:
        text = first(params, "limit")
        if not text:
            return -1
        try:
            return int(text)
        except ValueError:
            raise ApiError(ErrorType.BAD_DATA, "limit must be a number") from None

    def _targets_metadata(self) -> list[tuple[dict[str, str], Mapping[str, MetricMetadata]]]:
        return self.ctx.metadata.targets_metadata() if self.ctx.metadata else []

    async def metadata(self, request: Request) -> Response:
        """``/api/v1/metadata``: the scraped ``# TYPE``/``# HELP``/``# UNIT`` per metric."""
        params = list(request.query_params.multi_items())
        limit = self._metadata_limit(params)
        per_metric = self._metadata_limit([("limit", first(params, "limit_per_metric") or "")])
        metric = first(params, "metric") or ""
        found: dict[str, dict[MetricMetadata, None]] = {}
        for _, families in self._targets_metadata():
            items = [(metric, families[metric])] if metric in families else []
            for name, meta in items if metric else families.items():
                found.setdefault(name, {})[meta] = None
        data: dict[str, list[JSONDict]] = {}
        for name, metas in found.items():
            if 0 <= limit <= len(data):
                break
            entries = [_meta_json(m) for m in metas]
            data[name] = entries if per_metric < 0 else entries[:per_metric]
        return _success(data)

    async def targets_metadata(self, request: Request) -> Response:
        """``/api/v1/targets/metadata``: the metadata of each target, filtered."""
        params = list(request.query_params.multi_items())
        limit = self._metadata_limit(params)
        match_target = first(params, "match_target") or ""
        matchers: list[Matcher] = []
        if match_target:
            try:
                matchers = parse_selector(match_target)
            except SelectorError as exc:
                raise ApiError(
                    ErrorType.BAD_DATA, f'invalid parameter "match_target": {exc}'
                ) from None
        metric = first(params, "metric") or ""
        out: list[JSONDict] = []
        for target, families in self._targets_metadata():
            if 0 <= limit <= len(out):
                break
            if not all(m.matches(target.get(m.name, "")) for m in matchers):
                continue
            if not metric:
                out.extend(
                    {"target": target, "metric": name, **_meta_json(meta)}
                    for name, meta in families.items()
                )
            elif metric in families:
                out.append({"target": target, **_meta_json(families[metric])})
        return _success(out)

    async def exemplars(self, request: Request) -> Response:
        """``/api/v1/query_exemplars``: soulwatch stores no exemplars (an empty list),
        but the parameters are checked as Prometheus checks them."""
        params = await self._params(request)
        self._range(params)
        _expression_type(first(params, "query") or "")
        return _success([])


def _error_type(label: str) -> ErrorType:
    """The :class:`ErrorType` named ``label`` (``execution`` for one Prometheus lacks)."""
    return next((kind for kind in ErrorType if kind.label == label), ErrorType.EXECUTION)


def _time_param(value: str, name: str) -> int:
    """A time parameter of the endpoints that take an optional one (Prometheus's
    ``parseTimeParam``, whose errors say which value was invalid)."""
    try:
        return parse_time(value, name)
    except ApiError:
        raise ApiError(
            ErrorType.BAD_DATA,
            f"invalid parameter \"{name}\": Invalid time value for '{name}': "
            f'cannot parse "{value}" to a valid timestamp',
        ) from None


def _expression_type(query: str) -> str:
    """``range vector``, ``string`` or ``instant`` (vector or scalar): what ``query`` yields.

    Only a range selector or a subquery (maybe in parentheses) yields a range
    vector, so the type is known before evaluating: an empty result is still
    typed ``matrix``, and a range query over one is refused as bad data.
    """
    try:
        expr = parse_promql(query)
    except ParseError as exc:
        raise ApiError(ErrorType.BAD_DATA, f'invalid parameter "query": {exc}') from None
    while isinstance(expr, ParenExpr):
        expr = expr.expr
    if isinstance(expr, MatrixSelector | SubqueryExpr):
        return "range vector"
    if isinstance(expr, StringLiteral):
        return "string"
    return "instant"


def _meta_json(meta: MetricMetadata) -> JSONDict:
    return {"type": meta.type, "help": meta.help, "unit": meta.unit}


def _encode(result: QueryResult, *, matrix: bool = False) -> dict[str, Any]:
    value = result.value
    if isinstance(value, Scalar):
        return {
            "resultType": "scalar",
            "result": [format_time(value.t_ms), format_value(value.value)],
        }
    if isinstance(value, String):
        return {"resultType": "string", "result": [format_time(value.t_ms), value.value]}
    if matrix or result.result_type == "matrix":
        return {
            "resultType": "matrix",
            "result": [_series(s) for s in value if isinstance(s, Series)],
        }
    return {
        "resultType": "vector",
        "result": [
            {"metric": s.labels.to_dict(), "value": [format_time(s.t_ms), format_value(s.value)]}
            for s in value
            if not isinstance(s, Series)
        ],
    }


def _series(series: Series) -> dict[str, Any]:
    return {
        "metric": series.labels.to_dict(),
        "values": [[format_time(t), format_value(v)] for t, v in series],
    }
