"""Alertmanager's API v2 alerts and status, so rulers send to soulwatch and amtool reads it.

``POST /api/v2/alerts`` (scope ``alerts``) takes alerts from a Prometheus,
vmalert or Mimir ruler (or ``amtool alert add``) into soulwatch's routing;
``GET /api/v2/alerts`` (``active``, ``silenced``, ``inhibited``,
``unprocessed``, ``filter``, ``receiver``), ``GET /api/v2/alerts/groups``,
``GET /api/v2/receivers`` and ``GET /api/v2/status`` answer in
Alertmanager's shapes, so ``amtool alert query``, ``amtool config show`` and
``amtool cluster show`` work against soulwatch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from soulwatch.alerting.intake import AlertingUnavailableError, AlertQuery
from soulwatch.api.auth import Authenticator
from soulwatch.api.context import AlertIntakeView, ApiContext
from soulwatch.api.http import HttpError, read_body
from soulwatch.config import Scope
from soulwatch.tsdb.model import Matcher, MatchType


def _error(status: int, message: str) -> Response:
    # Alertmanager answers its API errors with a JSON string.
    return JSONResponse(message, status_code=status)


def _flag(request: Request, name: str) -> bool:
    text = request.query_params.get(name, "true").lower()
    if text not in ("true", "false", "1", "0"):
        raise HttpError(400, f"{name}: must be true or false, got {text!r}")
    return text in ("true", "1")


_MATCHER = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
_OPS = {
    "=": MatchType.EQUAL,
    "!=": MatchType.NOT_EQUAL,
    "=~": MatchType.REGEX,
    "!~": MatchType.NOT_REGEX,
}


def _split(text: str) -> list[str]:
    """Comma-separated matchers, commas inside quoted values kept."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return [p for p in parts if p.strip()]


def parse_matchers(text: str) -> list[Matcher]:
    """Alertmanager's matcher syntax: ``name=value``, ``name=~"re"``, or ``{a="b", c!=d}``;
    values may be quoted or bare. Raises :class:`HttpError` (400)."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1]
    out = []
    for part in _split(body):
        match = _MATCHER.match(part)
        if match is None:
            raise HttpError(400, f"bad matcher format: {part}")
        name, op, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise HttpError(400, f"bad matcher format: {part}") from None
        try:
            out.append(Matcher(_OPS[op], name, value))
        except re.error as exc:
            raise HttpError(400, f"bad matcher format: {part}: {exc}") from None
    return out


def query_of(request: Request) -> AlertQuery:
    """The :class:`AlertQuery` of a ``GET /api/v2/alerts`` request."""
    matchers: list[Matcher] = []
    for key, value in request.query_params.multi_items():
        if key == "filter":
            matchers.extend(parse_matchers(value))
    pattern = request.query_params.get("receiver")
    receiver = None
    if pattern:
        try:
            receiver = re.compile(f"(?:{pattern})")
        except re.error as exc:
            raise HttpError(400, f"failed to parse receiver param: {exc}") from None
    return AlertQuery(
        active=_flag(request, "active"),
        silenced=_flag(request, "silenced"),
        inhibited=_flag(request, "inhibited"),
        unprocessed=_flag(request, "unprocessed"),
        matchers=matchers,
        receiver=receiver,
    )


class AlertmanagerApi:
    """The Alertmanager v2 alert, group, receiver and status endpoints."""

    def __init__(self, ctx: ApiContext, auth: Callable[[], Authenticator]) -> None:
        self.ctx = ctx
        self._auth = auth

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        guard = self._guard
        return [
            Route("/api/v2/alerts", guard(self.post_alerts), methods=["POST"]),
            Route("/api/v2/alerts", guard(self.get_alerts), methods=["GET"]),
            Route("/api/v2/alerts/groups", guard(self.get_groups), methods=["GET"]),
            Route("/api/v2/receivers", guard(self.get_receivers), methods=["GET"]),
            Route("/api/v2/status", guard(self.get_status), methods=["GET"]),
        ]

    def _guard(self, handler: Callable[[Request, AlertIntakeView], Any]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                if self.ctx.alert_intake is None:
                    raise HttpError(503, "alerting is not configured")
                result: Response = await handler(request, self.ctx.alert_intake)
            except HttpError as exc:
                if exc.status in (401, 403):
                    return exc.response()
                return _error(exc.status, exc.message)
            except AlertingUnavailableError as exc:
                return _error(503, str(exc))
            return result

        return endpoint

    async def post_alerts(self, request: Request, intake: AlertIntakeView) -> Response:
        """``POST /api/v2/alerts``: a JSON list of ``postableAlert``."""
        self._auth().require(request, Scope.ALERTS)
        body = await read_body(request, self.ctx.api.max_body_bytes)
        try:
            alerts = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"body is not valid JSON: {exc}") from None
        if not isinstance(alerts, list):
            raise HttpError(400, "body must be a JSON list of alerts")
        errors = await intake.post_alerts(alerts)
        if errors:
            return _error(400, "; ".join(errors))
        return Response(status_code=200)

    async def get_alerts(self, request: Request, intake: AlertIntakeView) -> Response:
        """``GET /api/v2/alerts``."""
        self._auth().require_read(request)
        return JSONResponse(intake.alerts(query_of(request)))

    async def get_groups(self, request: Request, intake: AlertIntakeView) -> Response:
        """``GET /api/v2/alerts/groups``."""
        self._auth().require_read(request)
        return JSONResponse(intake.groups(query_of(request)))

    async def get_receivers(self, request: Request, intake: AlertIntakeView) -> Response:
        """``GET /api/v2/receivers``."""
        self._auth().require_read(request)
        return JSONResponse(intake.receivers())

    async def get_status(self, request: Request, intake: AlertIntakeView) -> Response:
        """``GET /api/v2/status``."""
        self._auth().require_read(request)
        return JSONResponse(intake.status())
