"""Prometheus's status endpoints and ``format_query``.

``/api/v1/status/config`` (the running config as YAML, every secret written
``<secret>`` as Prometheus does), ``status/flags``, ``status/runtimeinfo``,
``status/tsdb`` (head statistics and the top-10 cardinality lists) and
``/api/v1/format_query`` answer in Prometheus's shapes. ``GET /`` is the
console's overview (:mod:`soulwatch.api.console`), so clients that use the
root as a liveness check get a 200.
"""

from __future__ import annotations

import asyncio
import enum
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.api.auth import Authenticator
from soulwatch.api.context import ApiContext, JSONDict
from soulwatch.api.envelope import Endpoint, prometheus_endpoint, success
from soulwatch.api.http import ApiError, ErrorType, first, form_params
from soulwatch.config import SoulwatchConfig
from soulwatch.duration import format_duration
from soulwatch.exceptions import ParseError, QueryError
from soulwatch.promql.parser import parse as parse_promql
from soulwatch.promql.printer import pretty
from soulwatch.tsdb.model import Labels, Matcher, MatchType
from soulwatch.tsdb.storage import Storage

#: Keys whose values are secrets wherever they appear (Prometheus's and
#: Alertmanager's ``Secret`` fields, and soulwatch's own).
SECRET_KEYS = frozenset(
    {
        "password",
        "bearer_token",
        "credentials",
        "client_secret",
        "token",
        "api_key",
        "routing_key",
        "service_key",
        "api_url",
        "slack_api_url",
        "auth_password",
        "smtp_auth_password",
        "webhook_url",
        "hmac_secret",
        "deadman_url",
        "redis_url",
        "upstash_rest_token",
        "auth_secret",
        "smtp_auth_secret",
        "auth_token",
        "access_token",
        "bot_token",
        "user_key",
        "api_secret",
    }
)
#: Keys whose every item is a secret: free-form request headers (the names are
#: kept) and Prometheus 3's ``http_headers.*.secrets``.
_SECRET_ITEMS = frozenset({"headers", "secrets"})
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/@]*@")
#: Settings held as seconds that Prometheus writes as durations (``15s``).
_DURATION_KEYS = frozenset(
    {
        "scrape_interval",
        "scrape_timeout",
        "evaluation_interval",
        "rule_query_offset",
        "retention_time",
        "wal_fsync_interval",
        "wal_segment_max_age",
        "head_max_age",
        "busy_timeout",
        "timeout",
        "resolve_timeout",
        "group_wait",
        "group_interval",
        "repeat_interval",
        "initial_backoff",
        "max_backoff",
        "deadline",
        "retention",
        "verify_after",
        "cooldown",
    }
)
#: Lists whose items' ``url`` is a secret (a webhook URL often embeds a token).
_SECRET_URL_PARENTS = frozenset({"webhook_configs"})
SECRET = "<secret>"

_TOP = 10
_HEAD_WINDOW_MS = 3 * 3600 * 1000


def redact(value: Any, key: str = "", parent: str = "") -> Any:
    """Plain data of ``value`` (a model, dict, list...) with every secret as ``<secret>``."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python", by_alias=True, exclude_none=True)
    if isinstance(value, SecretStr):
        return SECRET
    if value is not None and (
        key in SECRET_KEYS or (key == "url" and parent in _SECRET_URL_PARENTS)
    ):
        return SECRET
    if key in _SECRET_ITEMS and isinstance(value, dict):
        return {str(k): SECRET for k in value}
    if key in _SECRET_ITEMS and isinstance(value, list):
        return [SECRET for _ in value]
    if key in _DURATION_KEYS and isinstance(value, int | float) and not isinstance(value, bool):
        return format_duration(value)
    if isinstance(value, dict):
        # unset and empty settings are left out, as Prometheus and Alertmanager write them
        return {
            str(k): redact(v, str(k), key or parent)
            for k, v in value.items()
            if v is not None and v not in ([], {})
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, "", key or parent) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float) and value.is_integer() and math.isfinite(value):
        return int(value)
    if isinstance(value, str) and "@" in value:
        # a password inside a URL (``redis://:pw@host``, ``https://user:pw@host``)
        return _URL_PASSWORD.sub(rf"\1:{SECRET}@", value)
    return value


def config_yaml(config: SoulwatchConfig) -> str:
    """The running configuration as YAML, secrets redacted, scrape jobs with the
    global defaults filled in (as Prometheus shows them)."""
    data = redact(config)
    data["scrape_configs"] = [redact(job) for job in config.resolved_scrape_configs()]
    # prometheus.yml's sections first, in Prometheus's order, then soulwatch's own
    first = [k for k in ("global", "rule_files", "scrape_configs", "alerting") if k in data]
    ordered = {k: data[k] for k in first} | {k: v for k, v in data.items() if k not in first}
    return yaml.safe_dump(ordered, sort_keys=False, default_flow_style=False)


def tsdb_status(storage: Storage, now_ms: int, limit: int = _TOP) -> JSONDict:
    """``/api/v1/status/tsdb`` over the series with samples in the last three hours
    (Prometheus reports its head block, which holds about that much)."""
    mint = now_ms - _HEAD_WINDOW_MS
    every = [Matcher(MatchType.REGEX, "__name__", ".+")]
    series: list[Labels] = storage.series(every, mint, now_ms)
    by_name: Counter[str] = Counter()
    by_pair: Counter[str] = Counter()
    values: dict[str, set[str]] = {}
    for labels in series:
        by_name[labels.get("__name__")] += 1
        for name, value in labels:
            by_pair[f"{name}={value}"] += 1
            values.setdefault(name, set()).add(value)
    min_t, max_t, chunks = _time_range(storage, every, mint, now_ms)
    value_counts = Counter({name: len(vs) for name, vs in values.items()})
    memory = Counter({name: sum(len(v.encode()) for v in vs) for name, vs in values.items()})

    def top(counter: Counter[str]) -> list[JSONDict]:
        ranked = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
        return [{"name": n, "value": v} for n, v in ranked]

    return {
        "headStats": {
            "numSeries": len(series),
            "numLabelPairs": len(by_pair),
            "chunkCount": chunks,
            "minTime": min_t,
            "maxTime": max_t,
        },
        "seriesCountByMetricName": top(by_name),
        "labelValueCountByLabelName": top(value_counts),
        "memoryInBytesByLabelName": top(memory),
        "seriesCountByLabelValuePair": top(by_pair),
    }


def _time_range(
    storage: Storage, matchers: list[Matcher], mint: int, maxt: int
) -> tuple[int, int, int]:
    """Oldest and newest sample time and the number of 120-sample chunks in the window."""
    lo, hi, chunks = None, None, 0
    for s in storage.select(matchers, mint, maxt):
        ts = s.timestamps
        if not ts:
            continue
        lo = ts[0] if lo is None else min(lo, ts[0])
        hi = ts[-1] if hi is None else max(hi, ts[-1])
        chunks += -(-len(ts) // 120)
    # Prometheus's values for an empty head: +/- the int64 extremes.
    return (lo if lo is not None else 2**63 - 1, hi if hi is not None else -(2**63), chunks)


class StatusApi:
    """``/api/v1/status/{config,flags,runtimeinfo,tsdb}`` and ``format_query``."""

    def __init__(self, ctx: ApiContext, auth: Callable[[], Authenticator]) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        both = ["GET", "POST"]
        return [
            Route("/api/v1/status/config", self._wrap(self.config), methods=["GET"]),
            Route("/api/v1/status/flags", self._wrap(self.flags), methods=["GET"]),
            Route("/api/v1/status/runtimeinfo", self._wrap(self.runtimeinfo), methods=["GET"]),
            Route("/api/v1/status/tsdb", self._wrap(self.tsdb), methods=["GET"]),
            Route("/api/v1/status/ha", self._wrap(self.ha), methods=["GET"]),
            Route("/api/v1/format_query", self._wrap(self.format_query), methods=both),
        ]

    def _wrap(self, handler: Callable[[Request], Awaitable[Any]]) -> Endpoint:
        async def respond(request: Request) -> Response:
            return success(await handler(request))

        return prometheus_endpoint(respond, self._auth)

    async def config(self, request: Request) -> JSONDict:
        """``/api/v1/status/config``: ``{"yaml": ...}`` with secrets redacted."""
        if self.ctx.config is None:
            raise ApiError(ErrorType.UNAVAILABLE, "the configuration is not available")
        return {"yaml": config_yaml(self.ctx.config)}

    async def flags(self, request: Request) -> dict[str, str]:
        """``/api/v1/status/flags``: settings under Prometheus's flag names."""
        return self.ctx.runtime.flags() if self.ctx.runtime else {}

    async def runtimeinfo(self, request: Request) -> JSONDict:
        """``/api/v1/status/runtimeinfo``."""
        if self.ctx.runtime is None:
            raise ApiError(ErrorType.UNAVAILABLE, "runtime information is not available")
        return self.ctx.runtime.runtime_info()

    async def ha(self, request: Request) -> JSONDict:
        """``/api/v1/status/ha``: this instance's part in an HA pair (``enabled: false`` alone)."""
        if self.ctx.ha is None:
            return {"enabled": False, "mode": "off"}
        return self.ctx.ha()

    async def tsdb(self, request: Request) -> JSONDict:
        """``/api/v1/status/tsdb``: head statistics and cardinality (``limit``, default 10)."""
        text = request.query_params.get("limit", "")
        limit = _TOP
        if text:
            if not text.isdigit() or int(text) == 0:
                raise ApiError(ErrorType.BAD_DATA, "limit must be a positive number")
            limit = int(text)
        now_ms = round(self.ctx.clock.time() * 1000)
        storage = self.ctx.storage
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(tsdb_status, storage, now_ms, limit), self.ctx.api.query_timeout
            )
        except QueryError as exc:  # an agent keeps no head to describe
            raise ApiError(ErrorType.EXECUTION, str(exc)) from None

    async def format_query(self, request: Request) -> str:
        """``/api/v1/format_query``: the query as Prometheus would write it."""
        params = await form_params(request, self.ctx.api.max_body_bytes)
        try:
            query = first(params, "query") or ""
            return pretty(parse_promql(query), source=query)
        except ParseError as exc:
            raise ApiError(ErrorType.BAD_DATA, f'invalid parameter "query": {exc}') from None
