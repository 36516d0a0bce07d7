"""Heartbeat endpoints: healthchecks-compatible pings, and checks CRUD.

Pings need no token (the check's UUID, or the ping key, is the secret) and
answer in plain text as healthchecks does: ``200 OK``, ``201 Created`` (an
auto-created check), ``404 not found`` (whatever is unknown: the check, the
ping key; nothing tells which), ``409 ambiguous slug``, ``400`` for a bad
exit status, ``413`` for a body past the API's limit. The first
``heartbeats.max_body_bytes`` of a POST body are kept as the ping's message.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.api.auth import Authenticator, Principal
from soulwatch.api.context import ApiContext
from soulwatch.api.http import HttpError, json_response, parse_json, read_body
from soulwatch.config import Scope
from soulwatch.duration import format_duration
from soulwatch.sources.heartbeats import (
    Check,
    HeartbeatCheckConfig,
    HeartbeatMonitor,
    ManagedByConfigError,
    NotPausedError,
    Ping,
    PingKind,
    PingOutcome,
    UnknownCheckError,
)

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
#: The longest slug a ping may use (a check name's limit: auto-creation names the check by it).
MAX_SLUG_LENGTH = 200
_ACTIONS = {"start": PingKind.START, "fail": PingKind.FAIL, "log": PingKind.LOG}


def _text(body: str, status: int) -> Response:
    return Response(body, status_code=status, media_type="text/plain")


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


class HeartbeatApi:
    """Ping endpoints and ``/api/v1/heartbeats`` (checks CRUD, pings, status changes)."""

    def __init__(self, ctx: ApiContext, auth: Any) -> None:
        self.ctx = ctx
        self._auth = auth

    @property
    def auth(self) -> Authenticator:
        """The current authenticator (it changes on reload)."""
        result: Authenticator = self._auth()
        return result

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        ping = ["GET", "POST", "HEAD"]
        crud = self._guard
        return [
            Route("/ping/{rest:path}", self.ping, methods=ping),
            Route("/api/v1/heartbeats", crud(self.list_checks), methods=["GET"]),
            Route("/api/v1/heartbeats", crud(self.create_check), methods=["POST"]),
            Route("/api/v1/heartbeats/{name}", crud(self.get_check), methods=["GET"]),
            Route("/api/v1/heartbeats/{name}", crud(self.update_check), methods=["PUT"]),
            Route("/api/v1/heartbeats/{name}", crud(self.delete_check), methods=["DELETE"]),
            Route("/api/v1/heartbeats/{name}/pings", crud(self.check_pings), methods=["GET"]),
            Route("/api/v1/heartbeats/{name}/pause", crud(self.pause_check), methods=["POST"]),
            Route("/api/v1/heartbeats/{name}/resume", crud(self.resume_check), methods=["POST"]),
        ]

    def _guard(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                if self.ctx.heartbeats is None:
                    raise HttpError(404, "heartbeats are not enabled")
                result: Response = await handler(request, self.ctx.heartbeats)
            except HttpError as exc:
                return exc.response()
            return result

        return endpoint

    # -- pings ------------------------------------------------------------------

    async def ping(self, request: Request) -> Response:
        """``/ping/<uuid>[/start|/fail|/log|/<exit-status>]`` and ``/ping/<key>/<slug>[/...]``."""
        monitor = self.ctx.heartbeats
        if monitor is None:
            return _text("not found", 404)
        try:
            body = b""
            if request.method == "POST":
                body = await read_body(request, self.ctx.api.max_body_bytes, text=True)
        except HttpError as exc:
            return exc.response()
        parts = [p for p in request.path_params["rest"].split("/") if p]
        if not parts:
            return _text("not found", 404)
        if _UUID.match(parts[0]):
            target, rest = parts[0], parts[1:]
            slug_key: str | None = None
        elif len(parts) >= 2:
            slug_key, target, rest = parts[0], parts[1], parts[2:]
            if len(target) > MAX_SLUG_LENGTH:
                # A check's name is its slug when auto-created, and names are bounded.
                return _text(
                    f"invalid url format: a slug has at most {MAX_SLUG_LENGTH} characters", 400
                )
        else:
            return _text("not found", 404)
        if len(rest) > 1:
            return _text("not found", 404)
        kind = PingKind.SUCCESS
        exit_status: int | None = None
        if rest:
            action = rest[0]
            if action in _ACTIONS:
                kind = _ACTIONS[action]
            elif action.isdigit():
                exit_status = int(action)
                if exit_status > 255:
                    return _text("invalid url format", 400)
                kind = PingKind.SUCCESS if exit_status == 0 else PingKind.FAIL
            else:
                return _text("not found", 404)
        rid = request.query_params.get("rid") or None
        if rid is not None and not _UUID.match(rid):
            return _text("invalid url format", 400)
        ping = Ping(
            t=self.ctx.clock.time(),
            kind=kind,
            rid=rid,
            exit_status=exit_status,
            method=request.method,
            remote_addr=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""),
            body=body,
        )
        if slug_key is None:
            outcome = await asyncio.to_thread(monitor.ping_uuid, target, ping)
        else:
            create = request.query_params.get("create") == "1"
            outcome = await asyncio.to_thread(
                monitor.ping_slug, slug_key, target, ping, create=create
            )
        return {
            PingOutcome.OK: lambda: _text("OK", 200),
            PingOutcome.CREATED: lambda: _text("Created", 201),
            PingOutcome.NOT_FOUND: lambda: _text("not found", 404),
            PingOutcome.AMBIGUOUS: lambda: _text("ambiguous slug", 409),
        }[outcome]()

    # -- checks -------------------------------------------------------------------

    def _view(self, check: Check, who: Principal | None) -> dict[str, Any]:
        now = self.ctx.clock.time()
        out: dict[str, Any] = {
            "name": check.name,
            "slug": check.slug,
            "description": check.description,
            "source": check.source,
            "status": check.status_at(now).value,
            "started": check.last_start is not None,
            "period": format_duration(check.period) if check.period is not None else None,
            "schedule": check.schedule,
            "tz": check.tz,
            "grace": format_duration(check.grace),
            "n_pings": check.n_pings,
            "last_ping": _iso(check.last_ping),
            "next_ping": _iso(check.expected_at()),
            "last_duration": check.last_duration,
        }
        # The UUID is the check's ping secret: only shown to an authenticated caller.
        if who is not None:
            out["uuid"] = check.uuid
            # Absolute, on the monitor's external URL (as notification links are),
            # so it can be pasted into the job's environment as is.
            cfg = self.ctx.config
            base = (cfg.external_url or f"http://{cfg.listen}").rstrip("/") if cfg else ""
            out["ping_url"] = f"{base}/ping/{check.uuid}"
        return out

    async def list_checks(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``GET /api/v1/heartbeats``."""
        who = self.auth.require_read(request)
        return json_response({"checks": [self._view(c, who) for c in monitor.checks()]})

    async def get_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``GET /api/v1/heartbeats/<name>``: the check with its recent status changes."""
        who = self.auth.require_read(request)
        name = request.path_params["name"]
        check = monitor.by_name(name)
        if check is None:
            raise HttpError(404, f"no check named {name!r}")
        flips = await asyncio.to_thread(monitor.flips, name, 50)
        view = self._view(check, who)
        view["flips"] = [{"at": _iso(f.t), "from": f.old.value, "to": f.new.value} for f in flips]
        return json_response(view)

    async def check_pings(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``GET /api/v1/heartbeats/<name>/pings``: recent pings with their messages."""
        self.auth.require_read(request)
        name = request.path_params["name"]
        try:
            pings = await asyncio.to_thread(monitor.pings, name, 100)
        except UnknownCheckError:
            raise HttpError(404, f"no check named {name!r}") from None
        return json_response(
            {
                "pings": [
                    {
                        "at": _iso(p.t),
                        "kind": p.kind.value,
                        "rid": p.rid,
                        "exit_status": p.exit_status,
                        "method": p.method,
                        "remote_addr": p.remote_addr,
                        "user_agent": p.user_agent,
                        "body": p.body.decode(errors="replace"),
                    }
                    for p in pings
                ]
            }
        )

    async def create_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``POST /api/v1/heartbeats`` (scope ``admin``): 201 with the new check."""
        who = self.auth.require(request, Scope.ADMIN)
        spec = await parse_json(request, HeartbeatCheckConfig, self.ctx.api.max_body_bytes)
        try:
            check = await asyncio.to_thread(monitor.create, spec, self.ctx.clock.time())
        except ValueError as exc:
            raise HttpError(409, str(exc), field="name") from None
        return json_response(self._view(check, who), 201)

    async def update_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``PUT /api/v1/heartbeats/<name>`` (scope ``admin``): replace the definition."""
        who = self.auth.require(request, Scope.ADMIN)
        spec = await parse_json(request, HeartbeatCheckConfig, self.ctx.api.max_body_bytes)
        name = request.path_params["name"]
        try:
            check = await asyncio.to_thread(monitor.update, name, spec)
        except UnknownCheckError:
            raise HttpError(404, f"no check named {name!r}") from None
        except ManagedByConfigError as exc:
            raise HttpError(409, str(exc)) from None
        except ValueError as exc:
            raise HttpError(409, str(exc), field="name") from None
        return json_response(self._view(check, who))

    async def delete_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``DELETE /api/v1/heartbeats/<name>`` (scope ``admin``)."""
        self.auth.require(request, Scope.ADMIN)
        name = request.path_params["name"]
        try:
            await asyncio.to_thread(monitor.delete, name)
        except UnknownCheckError:
            raise HttpError(404, f"no check named {name!r}") from None
        except ManagedByConfigError as exc:
            raise HttpError(409, str(exc)) from None
        return Response(status_code=204)

    async def pause_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``POST /api/v1/heartbeats/<name>/pause`` (scope ``admin``): stop expecting pings.

        Declared checks can be paused too; the next success or failure ping resumes.
        """
        who = self.auth.require(request, Scope.ADMIN)
        name = request.path_params["name"]
        try:
            check = await asyncio.to_thread(monitor.pause, name, self.ctx.clock.time())
        except UnknownCheckError:
            raise HttpError(404, f"no check named {name!r}") from None
        return json_response(self._view(check, who))

    async def resume_check(self, request: Request, monitor: HeartbeatMonitor) -> Response:
        """``POST /api/v1/heartbeats/<name>/resume`` (scope ``admin``); 409 when not paused."""
        who = self.auth.require(request, Scope.ADMIN)
        name = request.path_params["name"]
        try:
            check = await asyncio.to_thread(monitor.resume, name, self.ctx.clock.time())
        except UnknownCheckError:
            raise HttpError(404, f"no check named {name!r}") from None
        except NotPausedError as exc:
            raise HttpError(409, str(exc)) from None
        return json_response(self._view(check, who))
