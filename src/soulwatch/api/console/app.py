"""The console's routes: server-rendered pages, a few forms, and static assets.

Every page is a plain GET with a stable URL that reads without JavaScript;
``console.js`` then refreshes its ``<main>`` in place (the same URL with
``X-Console-Fragment: main``, answered with that block alone) and draws the
charts with the vendored uPlot. Writes are HTML form POSTs that redirect back
(post/redirect/get), each checked for a CSRF token and for the visitor's scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jinja2
import structlog
from prometheus_client import Gauge
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from soulwatch import __version__
from soulwatch.alerting.matchers import MatcherSyntaxError, parse_matchers
from soulwatch.alerting.silences import SilenceMatcher
from soulwatch.alerts import fingerprint
from soulwatch.api.auth import Authenticator
from soulwatch.api.cancel import ClientGone, run_until_unwanted
from soulwatch.api.console import data
from soulwatch.api.console.boards import Board, load_boards
from soulwatch.api.console.events import LiveEvents
from soulwatch.api.console.format import fmt_ago, fmt_seconds, fmt_time, fmt_value, to_unix
from soulwatch.api.console.redact import redacted_config
from soulwatch.api.console.session import (
    SESSION_COOKIE,
    Sessions,
    Visitor,
    csrf_ok,
    set_cookies,
    set_session_cookie,
    visitor,
)
from soulwatch.api.context import ApiContext, JSONDict, SilenceNotFoundError
from soulwatch.api.http import format_value, read_body
from soulwatch.api.views import rfc3339
from soulwatch.config import Scope
from soulwatch.duration import format_duration, parse_duration
from soulwatch.exceptions import ConfigError, ParseError, QueryError, StorageError
from soulwatch.sources.heartbeats.model import (
    HeartbeatCheckConfig,
    ManagedByConfigError,
    NotPausedError,
    UnknownCheckError,
)
from soulwatch.tsdb.model import Labels

STATIC_PREFIX = "/-/console/static"
EVENTS_PATH = "/-/console/events"
#: Seconds between background refreshes of the boards' sparklines (kept incremental).
WARM_INTERVAL = 60.0
FRAGMENT_HEADER = "x-console-fragment"
_MAIN_OPEN = '<main id="main">'
#: Time ranges offered by Explore and History.
RANGES = ["5m", "15m", "1h", "3h", "6h", "12h", "1d", "2d", "7d"]
_FORM_LIMIT = 64 * 1024
_NAV = [
    ("/", "Overview"),
    ("/alerts", "Alerts"),
    ("/history", "History"),
    ("/silences", "Silences"),
    ("/heartbeats", "Heartbeats"),
    ("/targets", "Targets"),
    ("/rules", "Rules"),
    ("/deliveries", "Deliveries"),
    ("/status", "Status"),
    ("/explore", "Explore"),
]
Handler = Callable[[Request, Visitor], Awaitable[Response]]
_log = structlog.get_logger("soulwatch.console")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(message)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("soulwatch.api.console", "templates"),
        autoescape=True,
        # Missing annotations and labels read as empty, as in Alertmanager's templates.
        undefined=jinja2.ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        value=fmt_value,
        seconds=fmt_seconds,
        time=fmt_time,
        duration=format_duration,
        promvalue=format_value,
        unix=to_unix,
        labels=lambda d: ", ".join(f'{k}="{v}"' for k, v in sorted(d.items())),
    )
    env.globals.update(
        nav=_NAV, static=STATIC_PREFIX, events=EVENTS_PATH, version=__version__, urlencode=urlencode
    )
    return env


class Console:
    """The pages; one instance per API app (it holds the login sessions)."""

    def __init__(self, ctx: ApiContext, auth: Callable[[], Authenticator]) -> None:
        self.ctx = ctx
        self._auth = auth
        lifetime = ctx.config.console.session_lifetime if ctx.config else 12 * 3600.0
        self.sessions = Sessions(ctx.clock, lifetime)
        self.env = _environment()
        self._boards: tuple[object, list[Board], str] | None = None
        self._sparks = data.SparkCache()
        live = ctx.config.console.live_clients if ctx.config else 50
        self.events = LiveEvents(self._live_signature, max_clients=live)
        self._warmer: asyncio.Task[None] | None = None
        #: Set once every board's sparklines have been computed after the start.
        self._warm = asyncio.Event()
        #: ``soulwatch_console_live_clients``, in the monitor's metrics while served.
        self._clients_gauge: Gauge | None = None

    # --- lifespan -------------------------------------------------------------------

    async def start(self) -> None:
        """Get ready before the first visitor: compile the templates, load the boards,
        and keep every board's sparklines computed in the background.

        Without it the console works the same, but its first overview after a
        start evaluates every panel over the board's whole range.
        """
        await asyncio.to_thread(self._compile)
        if self.ctx.registry is not None and self._clients_gauge is None:
            gauge = Gauge(
                "soulwatch_console_live_clients",
                "Console pages holding a live event stream open now.",
                registry=None,
            )
            gauge.set_function(lambda: self.events.clients)
            self.ctx.registry.register(gauge)
            self._clients_gauge = gauge
        if self._warmer is None:
            self._warmer = asyncio.get_running_loop().create_task(self._keep_warm())

    def close_streams(self) -> None:
        """End every live event stream (call before stopping the HTTP server)."""
        self.events.close()

    async def aclose(self) -> None:
        """Stop the background work and end the event streams."""
        self.close_streams()
        if self.ctx.registry is not None and self._clients_gauge is not None:
            self.ctx.registry.unregister(self._clients_gauge)
            self._clients_gauge = None
        if self._warmer is not None:
            self._warmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._warmer
            self._warmer = None

    def _compile(self) -> None:
        for name in self.env.list_templates():
            if name.endswith(".html"):
                self.env.get_template(name)
        self.boards()

    async def _keep_warm(self) -> None:
        # A refresh computes only the sparkline steps that are new since the last
        # evaluation; evaluating every board each minute keeps it that way even
        # when nobody looks, so no visitor pays for a whole range.
        while True:
            boards, _ = self.boards()
            alerts = self._alerts()
            for board in boards:
                try:
                    sparks = self._sparks
                    await self.ctx.runner(data.evaluate_board, self.ctx, board, alerts, sparks)
                except Exception as exc:
                    _log.warning("console: could not evaluate a board", board=board.name,
                                 error=repr(exc))  # fmt: skip
            self._warm.set()
            await asyncio.sleep(WARM_INTERVAL)

    def _live_signature(self) -> tuple[Any, dict[str, int]]:
        """What open pages refresh at once on: alert states, heartbeat statuses and silences."""
        alerts = self._alerts()
        states = frozenset((tuple(sorted(a["labels"].items())), a["state"]) for a in alerts)
        monitor = self.ctx.heartbeats
        now = self.ctx.clock.time()
        checks = frozenset(
            (c.name, c.status_at(now).value) for c in (monitor.checks() if monitor else ())
        )
        # A silence created, edited or expired (or its start reached) changes what
        # the alerts and silences pages show, before any alert changes state.
        silences = self.ctx.silences
        muting = frozenset(
            (s.get("id"), s.get("status", {}).get("state"), s.get("updatedAt"))
            for s in (silences.list_silences() if silences else ())
        )
        summary = {
            "firing": sum(a["state"] == "firing" for a in alerts),
            "pending": sum(a["state"] == "pending" for a in alerts),
        }
        return (states, checks, muting), summary

    def routes(self) -> list[BaseRoute]:
        """The console's routes (mounted before the API's, so ``/`` is the console's)."""
        static = StaticFiles(packages=[("soulwatch.api.console", "static")])
        page = self._page
        return [
            Route("/", page(self.overview), methods=["GET", "HEAD"]),
            Route("/boards/{name}", page(self.overview), methods=["GET", "HEAD"]),
            Route("/alerts", page(self.alerts), methods=["GET", "HEAD"]),
            Route("/alerts/group/{gid}", page(self.group_page), methods=["GET", "HEAD"]),
            Route("/alerts/group/{gid}/ack", page(self.acknowledge), methods=["POST"]),
            Route("/alerts/{fingerprint}", page(self.alert_page), methods=["GET", "HEAD"]),
            Route("/history", page(self.history), methods=["GET", "HEAD"]),
            Route("/silences", page(self.silences), methods=["GET", "HEAD", "POST"]),
            Route("/silences/new", page(self.new_silence), methods=["GET", "HEAD"]),
            Route("/silences/preview", page(self.silence_preview), methods=["GET"]),
            Route("/silences/{sid}/expire", page(self.expire_silence), methods=["POST"]),
            Route("/heartbeats", page(self.heartbeats), methods=["GET", "HEAD", "POST"]),
            Route("/heartbeats/{name}/delete", page(self.delete_check), methods=["POST"]),
            Route("/heartbeats/{name}/pause", page(self.pause_check), methods=["POST"]),
            Route("/heartbeats/{name}/resume", page(self.resume_check), methods=["POST"]),
            Route("/targets", page(self.targets), methods=["GET", "HEAD"]),
            Route("/rules", page(self.rules), methods=["GET", "HEAD"]),
            Route("/deliveries", page(self.deliveries), methods=["GET", "HEAD"]),
            Route("/status", page(self.status), methods=["GET", "HEAD"]),
            Route("/explore", page(self.explore), methods=["GET", "HEAD"]),
            Route("/explore/complete", page(self.complete), methods=["GET"]),
            Route("/graph", self.graph_redirect, methods=["GET"]),
            Route(EVENTS_PATH, self.live, methods=["GET"]),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount(STATIC_PREFIX, app=static, name="console-static"),
        ]

    # --- plumbing -----------------------------------------------------------------

    @property
    def _has_tokens(self) -> bool:
        return bool(self.ctx.auth.tokens)

    def _secure(self, request: Request) -> bool:
        # Behind a TLS-terminating proxy the request is plain HTTP; external_url tells.
        external = self.ctx.config.external_url if self.ctx.config else ""
        return request.url.scheme == "https" or external.startswith("https://")

    @property
    def _exposed(self) -> bool:
        """Open (no tokens) and listening beyond this machine."""
        if self._has_tokens or self.ctx.config is None:
            return False
        host = self.ctx.config.listen.rpartition(":")[0].strip("[]")
        return host not in ("127.0.0.1", "::1", "localhost")

    def _page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            who = visitor(request, self._auth(), self.sessions, self._has_tokens)
            if not who.can_read:
                if request.method == "GET" and FRAGMENT_HEADER not in request.headers:
                    query = f"?{request.url.query}" if request.url.query else ""
                    target = request.url.path + query
                    return RedirectResponse(f"/login?{urlencode({'next': target})}", 303)
                return PlainError(401, "log in to read this console").response()
            started = time.perf_counter()
            try:
                response = await handler(request, who)
            except _Refused as exc:
                response = self.render(
                    request, who, "error.html", {"status": exc.status, "message": exc.message},
                    status=exc.status,
                )  # fmt: skip
            except StorageError as exc:
                # A store of the data directory refused the write (a full disk): the
                # person acting sees why, and what is already stored stays as it was.
                response = self.render(
                    request, who, "error.html", {"status": 503, "message": str(exc)}, status=503
                )
            set_cookies(response, who, secure=self._secure(request))
            # What the page cost the server (browsers show it; benchmarks/console.py reads it).
            spent = (time.perf_counter() - started) * 1000
            response.headers["server-timing"] = f"app;dur={spent:.1f}"
            return response

        return endpoint

    def render(
        self,
        request: Request,
        who: Visitor,
        template: str,
        context: dict[str, Any],
        *,
        status: int = 200,
    ) -> Response:
        """A page, or only its ``main`` block when the console's script asks for it."""
        tmpl = self.env.get_template(template)
        now = self.ctx.clock.time()
        values = {
            "request": request,
            "path": request.url.path,
            "who": who,
            "exposed": self._exposed,
            "agent": self.ctx.config is not None and self.ctx.config.mode == "agent",
            "now": now,
            "ago": lambda t: fmt_ago(t, now),
            "refresh": self._refresh(context.pop("refresh", 10)),
            "live": self.events.max_clients > 0,
            **context,
        }
        body = tmpl.render(values)
        if request.headers.get(FRAGMENT_HEADER) == "main":
            # The whole page is rendered (its macros are imported at its top), then cut.
            start = body.find(_MAIN_OPEN)
            end = body.rfind("</main>")
            if start >= 0 and end > start:
                body = body[start + len(_MAIN_OPEN) : end]
        response = HTMLResponse(body, status_code=status)
        response.headers["cache-control"] = "no-store"
        response.headers["x-frame-options"] = "DENY"
        response.headers["content-security-policy"] = (
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
            " frame-ancestors 'none'; form-action 'self'"
        )
        return response

    def _refresh(self, wanted: float) -> float:
        """Seconds between live refreshes (``console.refresh`` wins; 0: no refresh)."""
        config = self.ctx.config
        if wanted and config is not None and config.console.refresh is not None:
            return config.console.refresh
        return wanted

    async def _form(self, request: Request, who: Visitor, scope: Scope) -> dict[str, str]:
        """A POSTed form, once its CSRF token and the visitor's scope are checked."""
        body = await read_body(request, _FORM_LIMIT)
        try:
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise _Refused(400, "the form is not UTF-8") from None
        if not csrf_ok(who, form.get("csrf", "")):
            raise _Refused(403, "this form has expired or did not come from this console (CSRF)")
        if not who.can(scope):
            need = "log in" if who.principal is None else "use a token"
            scopes = f"{scope.value!r} or 'admin'" if scope is not Scope.ADMIN else "'admin'"
            raise _Refused(403, f"{need} with the {scopes} scope to do this")
        return form

    def boards(self) -> tuple[list[Board], str]:
        """The configured boards (re-read when the config changes) and a load error."""
        config = self.ctx.config
        if self._boards is None or self._boards[0] is not config:
            try:
                boards = load_boards(config.console.board_paths(config)) if config else []
                error = ""
            except ConfigError as exc:
                boards, error = [], str(exc)
            self._boards = (config, boards, error)
        return self._boards[1], self._boards[2]

    def _alerts(self) -> list[JSONDict]:
        return self.ctx.rules.alerts() if self.ctx.rules else []

    async def _groups(self) -> list[JSONDict]:
        incidents = self.ctx.incidents
        return incidents.alert_groups() if incidents else []

    # --- pages ------------------------------------------------------------------

    async def overview(self, request: Request, who: Visitor) -> Response:
        boards, error = self.boards()
        name = request.path_params.get("name")
        board = next((b for b in boards if b.name == name), boards[0] if boards else None)
        if name is not None and board is not None and board.name != name:
            raise _Refused(404, f"no board named {name!r}")
        alerts = self._alerts()
        for a in alerts:
            a["fingerprint"] = _fp(a["labels"])
        tiles = []
        # Right after a start, while the background warm-up computes the sparklines,
        # the page shows the current values and states at once; sparklines follow
        # with the next refresh (the live stream's tick) instead of making it wait.
        warming = self._warmer is not None and not self._warm.is_set()
        tiles_error = ""
        if board is not None:
            evaluate = functools.partial(
                data.evaluate_board, self.ctx, board, alerts, self._sparks, history=not warming
            )
            timeout = self.ctx.api.query_timeout
            try:
                tiles = await run_until_unwanted(
                    self.ctx.runner, lambda cancel: evaluate(cancel=cancel), timeout, request
                )
            except ClientGone:
                return Response(status_code=499)  # the page was closed: nobody reads it
            except TimeoutError:
                tiles_error = (
                    "the board's queries timed out "
                    f"(after {format_duration(timeout)}; api.query_timeout)"
                )
        expected = set(self.ctx.config.console.always_firing if self.ctx.config else ())
        on_purpose = [a for a in alerts if a["labels"].get("alertname") in expected]
        alerts = [a for a in alerts if a not in on_purpose]
        firing = [a for a in alerts if a["state"] == "firing"]
        pending = [a for a in alerts if a["state"] == "pending"]
        return self.render(
            request,
            who,
            "overview.html",
            {
                "boards": boards,
                "board": board,
                "board_error": error,
                "tiles_error": tiles_error,
                "tiles": tiles,
                "warming": warming and board is not None,
                "firing": firing,
                "pending": pending,
                "on_purpose": on_purpose,
                "refresh": board.refresh if board else 10,
            },
        )

    async def alerts(self, request: Request, who: Visitor) -> Response:
        alerts = self._alerts()
        groups = await self._groups()
        grouped = {a["fingerprint"] for g in groups for a in g["alerts"]}
        pending = [a for a in alerts if a["state"] == "pending"]
        firing_rules = [
            a for a in alerts if a["state"] == "firing" and _fp(a["labels"]) not in grouped
        ]
        for a in [*pending, *firing_rules]:
            a["fingerprint"] = _fp(a["labels"])
        # The rule's current value of each routed alert.
        values = {_fp(a["labels"]): a["value"] for a in alerts}
        for g in groups:
            for a in g["alerts"]:
                a["value"] = values.get(a["fingerprint"], "")
        return self.render(
            request,
            who,
            "alerts.html",
            {"groups": groups, "pending": pending, "ungrouped": firing_rules},
        )

    async def group_page(self, request: Request, who: Visitor) -> Response:
        gid = request.path_params["gid"]
        group = next((g for g in await self._groups() if g["id"] == gid), None)
        incidents = self.ctx.incidents
        notifications = (
            await asyncio.to_thread(incidents.notifications, group_id=gid) if incidents else []
        )
        if group is None and not notifications:
            raise _Refused(404, f"no alert group {gid!r} (it may have resolved long ago)")
        if group is not None:
            alerts = group["alerts"]
        else:
            # Resolved and gone from the dispatcher: the notifications still name its alerts.
            seen: dict[str, JSONDict] = {}
            for n in notifications:
                for a in n["alerts"]:
                    seen.setdefault(a["fingerprint"], {**a, "annotations": {}})
            alerts = list(seen.values())
        try:
            detail = await self._alert_details(request, [a["labels"] for a in alerts])
        except ClientGone:
            return Response(status_code=499)  # the page was closed: nobody reads it
        return self.render(
            request,
            who,
            "alert.html",
            {
                "title": _title(alerts),
                "group": group,
                "gid": gid,
                "alerts": alerts,
                "notifications": notifications,
                **detail,
            },
        )

    async def alert_page(self, request: Request, who: Visitor) -> Response:
        fingerprint = request.path_params["fingerprint"]
        if not re.fullmatch(r"[0-9a-f]{16}", fingerprint):
            raise _Refused(404, "an alert's address ends with its 16-digit fingerprint")
        labels = next(
            (a["labels"] for a in self._alerts() if _fp(a["labels"]) == fingerprint), None
        )
        groups = [
            g
            for g in await self._groups()
            if any(a["fingerprint"] == fingerprint for a in g["alerts"])
        ]
        history = await asyncio.to_thread(self._history, 10_000)
        if labels is None:
            labels = next((t["labels"] for t in history if t["fingerprint"] == fingerprint), None)
        if labels is None:
            raise _Refused(404, f"no alert with fingerprint {fingerprint}")
        incidents = self.ctx.incidents
        notifications = (
            await asyncio.to_thread(incidents.notifications, fingerprint=fingerprint)
            if incidents
            else []
        )
        try:
            detail = await self._alert_details(request, [labels], history)
        except ClientGone:
            return Response(status_code=499)  # the page was closed: nobody reads it
        alert = next((a for a in self._alerts() if a["labels"] == labels), None)
        return self.render(
            request,
            who,
            "alert.html",
            {
                "title": labels.get("alertname", fingerprint),
                "group": groups[0] if groups else None,
                "gid": groups[0]["id"] if groups else "",
                "alerts": [
                    {
                        "fingerprint": fingerprint,
                        "labels": labels,
                        "annotations": alert["annotations"] if alert else {},
                        "status": alert["state"] if alert else "resolved",
                        "startsAt": alert["activeAt"] if alert else None,
                    }
                ],
                "notifications": notifications,
                **detail,
            },
        )

    def _history(self, limit: int) -> list[JSONDict]:
        return self.ctx.rules.alert_history(limit) if self.ctx.rules else []

    async def _alert_details(
        self,
        request: Request,
        label_sets: list[dict[str, str]],
        history: list[JSONDict] | None = None,
    ) -> dict[str, Any]:
        """Timeline, actions and the chart of the rule around the episode.

        The records are read on a worker thread; the chart is a range query,
        so it runs on the query pool and stops at ``api.query_timeout`` or
        when the page is closed (raising :class:`ClientGone`), as Explore's do.
        """
        detail = await asyncio.to_thread(self._alert_records, label_sets, history)
        rule = detail["rule"]
        chart: dict[str, Any] | None = None
        if rule is not None:
            expr, threshold = data.split_threshold(rule["query"])
            start, end = data.episode_window(detail["timeline"], self.ctx.clock.time())
            only = label_sets[0] if len(label_sets) == 1 else None
            query = functools.partial(data.chart_series, self.ctx, expr, start, end, only=only)
            timeout = self.ctx.api.query_timeout
            try:
                times, columns = await run_until_unwanted(
                    self.ctx.runner, lambda cancel: query(cancel=cancel), timeout, request
                )
                chart = {
                    "expr": expr,
                    "threshold": threshold,
                    "times": times,
                    "series": columns,
                    "start": start,
                    "end": end,
                    "marks": [to_unix(t["at"]) for t in detail["timeline"]],
                }
            except TimeoutError:
                after = format_duration(timeout)
                error = f"the chart's query timed out (after {after}; api.query_timeout)"
                chart = {"expr": expr, "error": error}
            except QueryError as exc:
                chart = {"expr": expr, "error": str(exc)}
        return {**detail, "chart": chart}

    def _alert_records(
        self, label_sets: list[dict[str, str]], history: list[JSONDict] | None
    ) -> dict[str, Any]:
        """The alert's transitions, the actions run for it and its rule (off the loop)."""
        if history is None:
            history = self._history(10_000)
        timeline = [
            {**t, "labels": t["labels"]}
            for labels in label_sets
            for t in data.transitions_of(history, labels)
        ]
        timeline.sort(key=lambda t: to_unix(t["at"]) or 0.0)
        incidents = self.ctx.incidents
        fps = {_fp(labels) for labels in label_sets}
        runs = incidents.actions(limit=500) if incidents else []
        actions = [a for a in runs if a["fingerprint"] in fps]
        names = sorted({labels.get("alertname", "") for labels in label_sets} - {""})
        rule = data.rule_of(self.ctx, names[0]) if names else None
        return {"timeline": timeline, "actions": actions, "rule": rule}

    async def acknowledge(self, request: Request, who: Visitor) -> Response:
        form = await self._form(request, who, Scope.SILENCES)
        gid = request.path_params["gid"]
        by = who.name or form.get("by", "").strip()
        if self.ctx.incidents is None:
            raise _Refused(503, "acknowledging needs alert routing to be configured")
        try:
            await asyncio.to_thread(
                self.ctx.incidents.acknowledge, gid, by, form.get("comment", "")
            )
        except KeyError:
            raise _Refused(404, f"no active alert group {gid!r}") from None
        except ValueError as exc:
            raise _Refused(400, str(exc)) from None
        return RedirectResponse(f"/alerts/group/{gid}", 303)

    async def history(self, request: Request, who: Visitor) -> Response:
        q = request.query_params
        name = q.get("alertname", "").strip()
        priority = q.get("priority", "").strip()
        window = q.get("range", "1d")
        if window not in RANGES:
            raise _Refused(400, f"range must be one of {', '.join(RANGES)}")
        since = self.ctx.clock.time() - parse_duration(window)
        history = await asyncio.to_thread(self._history, 10_000)
        view = self.ctx.incidents
        acks = await asyncio.to_thread(view.acknowledgements, since - 86400) if view else []
        incidents = data.episodes(history, since, acks)
        if name:
            incidents = [i for i in incidents if i["labels"].get("alertname") == name]
        if priority:
            incidents = [i for i in incidents if i["labels"].get("priority") == priority]
        names = sorted({t["alertname"] for t in history})
        return self.render(
            request,
            who,
            "history.html",
            {
                "incidents": incidents,
                "names": names,
                "alertname": name,
                "priority": priority,
                "range": window,
                "ranges": RANGES,
            },
        )

    async def silences(self, request: Request, who: Visitor) -> Response:
        if request.method == "POST":
            return await self._create_silence(request, who)
        listing = self.ctx.silences.list_silences() if self.ctx.silences else []
        listing.sort(key=lambda s: (s["status"]["state"] != "active", s["endsAt"]), reverse=False)
        return self.render(request, who, "silences.html", {"silences": listing})

    async def new_silence(self, request: Request, who: Visitor) -> Response:
        q = request.query_params
        return self.render(
            request,
            who,
            "silence_new.html",
            {
                "matchers": q.get("matchers", ""),
                "duration": q.get("duration", "2h"),
                "comment": q.get("comment", ""),
                "error": "",
                "preview": self._preview(q.get("matchers", "")),
            },
        )

    async def silence_preview(self, request: Request, who: Visitor) -> Response:
        preview = self._preview(request.query_params.get("matchers", ""))
        return self.render(request, who, "silence_preview.html", {"preview": preview})

    def _preview(self, text: str) -> dict[str, Any]:
        """Which current alerts a matcher list would silence (or where it is wrong)."""
        if not text.strip():
            return {"error": "", "alerts": [], "empty": True}
        try:
            matchers = parse_matchers(text)
        except MatcherSyntaxError as exc:
            return {"error": str(exc), "alerts": [], "empty": False}
        alerts = [
            a
            for a in self._alerts()
            if all(m.matches_labels(Labels(a["labels"].items())) for m in matchers)
        ]
        return {"error": "", "alerts": alerts, "empty": not matchers}

    async def _create_silence(self, request: Request, who: Visitor) -> Response:
        form = await self._form(request, who, Scope.SILENCES)
        text = form.get("matchers", "")
        error, status = "", 400
        try:
            matchers = parse_matchers(text)
            if not matchers:
                raise ValueError("a silence needs at least one matcher")
            seconds = parse_duration(form.get("duration", ""))
            if seconds <= 0:
                raise ValueError("the duration must be positive")
        except MatcherSyntaxError as exc:
            error = f"matchers: {exc}"
        except ValueError as exc:
            error = str(exc) if "matcher" in str(exc) else f"duration: {exc}"
        author = who.name or form.get("created_by", "").strip()
        if not error and not author:
            error = "say who you are (created by)"
        if not error and self.ctx.silences is not None:
            now = self.ctx.clock.time()
            postable = {
                "matchers": [
                    SilenceMatcher.from_matcher(m).model_dump(by_alias=True) for m in matchers
                ],
                "startsAt": fmt_rfc3339(now),
                "endsAt": fmt_rfc3339(now + seconds),
                "createdBy": author,
                "comment": form.get("comment", "").strip() or "silenced from the console",
            }
            try:
                sid = await asyncio.to_thread(self.ctx.silences.put_silence, postable)
            except ValueError as exc:
                error = str(exc)
            except StorageError as exc:
                error, status = str(exc), 503
            else:
                return RedirectResponse(f"/silences?{urlencode({'created': sid})}", 303)
        return self.render(
            request,
            who,
            "silence_new.html",
            {
                "matchers": text,
                "duration": form.get("duration", ""),
                "comment": form.get("comment", ""),
                "error": error or "silences are not available",
                "preview": self._preview(text),
            },
            status=status,
        )

    async def expire_silence(self, request: Request, who: Visitor) -> Response:
        await self._form(request, who, Scope.SILENCES)
        if self.ctx.silences is None:
            raise _Refused(503, "silences are not available")
        try:
            await asyncio.to_thread(self.ctx.silences.expire_silence, request.path_params["sid"])
        except SilenceNotFoundError:
            raise _Refused(404, "no such silence") from None
        return RedirectResponse("/silences", 303)

    async def heartbeats(self, request: Request, who: Visitor) -> Response:
        if request.method == "POST":
            return await self._create_check(request, who)
        return await self._heartbeats(request, who, {})

    async def _create_check(self, request: Request, who: Visitor) -> Response:
        form = await self._form(request, who, Scope.ADMIN)
        monitor = self.ctx.heartbeats
        if monitor is None:
            raise _Refused(503, "heartbeats are not available")
        fields = {k: form.get(k, "").strip() for k in ("name", "period", "grace", "description")}
        spec = {k: v for k, v in fields.items() if v}
        try:
            check = HeartbeatCheckConfig.model_validate(spec)
            await asyncio.to_thread(monitor.create, check, self.ctx.clock.time())
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "check"
            message = first["msg"].removeprefix("Value error, ")
            return await self._heartbeats(request, who, {"error": f"{where}: {message}", **fields})
        except ValueError as exc:
            return await self._heartbeats(request, who, {"error": str(exc), **fields})
        return RedirectResponse(f"/heartbeats#check-{check.name}", 303)

    async def delete_check(self, request: Request, who: Visitor) -> Response:
        await self._form(request, who, Scope.ADMIN)
        monitor = self.ctx.heartbeats
        name = request.path_params["name"]
        if monitor is None:
            raise _Refused(503, "heartbeats are not available")
        try:
            await asyncio.to_thread(monitor.delete, name)
        except UnknownCheckError:
            raise _Refused(404, f"no check named {name!r}") from None
        except ManagedByConfigError as exc:
            raise _Refused(409, str(exc)) from None
        return RedirectResponse("/heartbeats", 303)

    async def pause_check(self, request: Request, who: Visitor) -> Response:
        """Pause a check (it expects no ping, does not alert; its next ping resumes it)."""
        return await self._pause_or_resume(request, who, pause=True)

    async def resume_check(self, request: Request, who: Visitor) -> Response:
        """Resume a paused check."""
        return await self._pause_or_resume(request, who, pause=False)

    async def _pause_or_resume(self, request: Request, who: Visitor, *, pause: bool) -> Response:
        await self._form(request, who, Scope.ADMIN)
        monitor = self.ctx.heartbeats
        name = request.path_params["name"]
        if monitor is None:
            raise _Refused(503, "heartbeats are not available")
        change = monitor.pause if pause else monitor.resume
        try:
            await asyncio.to_thread(change, name, self.ctx.clock.time())
        except UnknownCheckError:
            raise _Refused(404, f"no check named {name!r}") from None
        except NotPausedError as exc:
            raise _Refused(409, str(exc)) from None
        return RedirectResponse(f"/heartbeats#check-{name}", 303)

    async def _heartbeats(self, request: Request, who: Visitor, new: dict[str, str]) -> Response:
        monitor = self.ctx.heartbeats
        now = self.ctx.clock.time()
        checks = []
        if monitor is not None:
            for check in monitor.checks():
                pings = await asyncio.to_thread(monitor.pings, check.name, 10)
                checks.append(
                    {
                        "check": check,
                        "status": check.status_at(now).value,
                        "pings": pings,
                        "next": check.down_after(),
                        "url": f"/ping/{check.uuid}",
                    }
                )
        base = str(request.base_url).rstrip("/")
        return self.render(
            request,
            who,
            "heartbeats.html",
            {"checks": checks, "base": base, "new": new},
            status=400 if new.get("error") else 200,
        )

    async def targets(self, request: Request, who: Visitor) -> Response:
        view = self.ctx.targets
        targets = view.targets() if view else []
        probes = view.probes() if view else []
        return self.render(request, who, "targets.html", {"targets": targets, "probes": probes})

    async def rules(self, request: Request, who: Visitor) -> Response:
        groups = self.ctx.rules.rule_groups() if self.ctx.rules else []
        return self.render(request, who, "rules.html", {"groups": groups})

    async def deliveries(self, request: Request, who: Visitor) -> Response:
        state = request.query_params.get("state", "")
        view = self.ctx.receivers
        receivers = await asyncio.to_thread(view.receivers) if view else []
        incidents = self.ctx.incidents
        rows = await asyncio.to_thread(incidents.notifications, limit=500) if incidents else []
        if state == "retried":
            rows = [r for r in rows if r["attempts"] > 1]
        elif state:
            rows = [r for r in rows if r["state"] == state]
        return self.render(
            request,
            who,
            "deliveries.html",
            {"receivers": receivers, "rows": rows[:200], "state": state},
        )

    async def status(self, request: Request, who: Visitor) -> Response:
        config = self.ctx.config
        text = redacted_config(config) if config is not None else ""
        health = dict(self.ctx.health()) if self.ctx.health else {}
        # The failing stores get their own table (which, since when, why), not a dict in the facts.
        errors = health.pop("failing_stores", None) or {}
        since = health.pop("failing_since", None) or {}
        stores = [
            {"store": name, "error": error, "since": since.get(name)}
            for name, error in sorted(errors.items())
        ]
        metrics = self.ctx.metrics().decode() if self.ctx.metrics else ""
        own = [
            line
            for line in metrics.splitlines()
            if line.startswith("soulwatch_") and not line.startswith("#")
        ][:300]
        storage = [line for line in own if line.startswith("soulwatch_tsdb_")]
        own = [line for line in own if not line.startswith("soulwatch_tsdb_")]
        return self.render(
            request,
            who,
            "status.html",
            {
                "config": text,
                "health": health,
                "stores": stores,
                "metrics": own,
                "storage": storage,
                "auth_open": not self._has_tokens,
                "ha": self.ctx.ha() if self.ctx.ha is not None else None,
            },
        )

    async def explore(self, request: Request, who: Visitor) -> Response:
        q = request.query_params
        expr = q.get("expr", "").strip()
        window = q.get("range", "1h")
        if window not in RANGES:
            window = "1h"
        end_text = q.get("end", "").strip()
        now = self.ctx.clock.time()
        error: dict[str, Any] | None = None
        chart = None
        table: list[dict[str, Any]] = []
        end = now
        if end_text:
            try:
                parsed = float(end_text) if _is_number(end_text) else to_unix(end_text)
            except ValueError:
                parsed = None
                error = {
                    "message": f"end: {end_text!r} is not an RFC 3339 time or a Unix time",
                    "line": None,
                }
            end = parsed if parsed is not None and math.isfinite(parsed) else now
        if expr and error is None:
            try:
                timeout = self.ctx.api.query_timeout
                query = functools.partial(self._explore_query, expr, window, end)
                chart, table = await run_until_unwanted(self.ctx.runner, query, timeout, request)
            except ClientGone:
                return Response(status_code=499)  # the page was closed: nobody reads it
            except TimeoutError:
                error = {
                    "message": "query timed out in expression evaluation "
                    f"(after {format_duration(timeout)}; api.query_timeout)",
                    "line": None,
                    "column": None,
                    "lines": [],
                }
            except ParseError as exc:
                error = data.parse_error_view(expr, exc)
            except QueryError as exc:
                error = {"message": str(exc), "line": None, "column": None, "lines": []}
        names = await asyncio.to_thread(self._metric_names)
        return self.render(
            request,
            who,
            "explore.html",
            {
                "expr": expr,
                "range": window,
                "ranges": RANGES,
                "end": end_text,
                "error": error,
                "chart": chart,
                "table": table,
                "metric_names": names[:2000],
                "refresh": 0,
            },
        )

    def _explore_query(
        self, expr: str, window: str, end: float, cancel: threading.Event
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        start = end - parse_duration(window)
        times, columns = data.chart_series(self.ctx, expr, start, end, cancel=cancel)
        result = self.ctx.engine.instant(expr, round(end * 1000), cancel=cancel)
        table: list[dict[str, Any]] = []
        value = result.value
        if isinstance(value, list):
            for item in value[:500]:
                labels = item.labels.to_dict()
                if hasattr(item, "value"):
                    table.append({"series": data.series_name(labels), "value": item.value})
                else:
                    last = item.values[-1] if item.values else math.nan
                    table.append({"series": data.series_name(labels), "value": last})
        else:
            table.append({"series": result.result_type, "value": value.value})
        chart = {"times": times, "series": columns, "threshold": None, "marks": []}
        return chart, table

    def _metric_names(self) -> list[str]:
        try:
            return self.ctx.series_index.label_values("__name__")
        except QueryError:
            return []  # an agent lists nothing: its series live at the receiver
        except StorageError:
            return []  # a remote store that cannot answer: /health names it

    async def complete(self, request: Request, who: Visitor) -> Response:
        """Completions for the text before the cursor: metrics, functions, labels, values."""
        before = request.query_params.get("before", "")[-500:]
        try:
            # On the query pool with the queries' timeout: a label lookup over
            # millions of series is a query too, and must not crowd the default pool.
            complete = functools.partial(data.completions, self.ctx.series_index, before)
            suggestions = await run_until_unwanted(
                self.ctx.runner, lambda _cancel: complete(), self.ctx.api.query_timeout, request
            )
        except (ClientGone, TimeoutError):
            suggestions = []  # nobody waits any more, or too slow to help while typing
        except QueryError:
            suggestions = []  # an agent has no series to suggest
        except StorageError:
            suggestions = []  # a remote store that cannot answer: /health names it
        return JSONResponse({"suggestions": suggestions[:50]})

    async def graph_redirect(self, request: Request) -> Response:
        """Prometheus's ``/graph?g0.expr=`` (alerts' generator URLs) opens in Explore."""
        expr = request.query_params.get("g0.expr", "")
        return RedirectResponse(f"/explore?{urlencode({'expr': expr})}", 303)

    async def live(self, request: Request) -> Response:
        """The page's live event stream (``text/event-stream``); same reading rights as pages."""
        who = visitor(request, self._auth(), self.sessions, self._has_tokens)
        if not who.can_read:
            return PlainError(401, "log in to read this console").response()
        return self.events.response(request.query_params.get("tick", ""))

    # --- login -----------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        auth = self._auth()
        who = visitor(request, auth, self.sessions, self._has_tokens)
        target = request.query_params.get("next", "/")
        # Only a path on this site: "//host" and "/\\host" would leave it.
        if not target.startswith("/") or target.startswith(("//", "/\\")):
            target = "/"
        error = ""
        status = 200
        if request.method == "POST":
            body = await read_body(request, _FORM_LIMIT)
            form = dict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True))
            if not csrf_ok(who, form.get("csrf", "")):
                error, status = "this form has expired; try again", 403
            else:
                principal = auth.check(form.get("token", ""))
                if principal is None:
                    error, status = "that token is not valid", 401
                else:
                    session = self.sessions.create(principal)
                    done = RedirectResponse(target, 303)
                    set_session_cookie(done, session, secure=self._secure(request))
                    return done
        response = self.render(
            request,
            who,
            "login.html",
            {"error": error, "next": target, "has_tokens": self._has_tokens},
            status=status,
        )
        set_cookies(response, who, secure=self._secure(request))
        return response

    async def logout(self, request: Request) -> Response:
        who = visitor(request, self._auth(), self.sessions, self._has_tokens)
        body = await read_body(request, _FORM_LIMIT)
        form = dict(parse_qsl(body.decode(errors="replace")))
        if not csrf_ok(who, form.get("csrf", "")):
            return PlainError(403, "CSRF token missing or wrong").response()
        if who.session is not None:
            self.sessions.drop(who.session.id)
        response = RedirectResponse("/login", 303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


class PlainError:
    """A short plain-text refusal (for fragment requests and logouts)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message

    def response(self) -> Response:
        """The response."""
        return Response(self.message + "\n", self.status, media_type="text/plain")


def _fp(labels: dict[str, str]) -> str:
    return fingerprint(Labels(labels.items()))


def _title(alerts: list[JSONDict]) -> str:
    names = sorted({a["labels"].get("alertname", "?") for a in alerts})
    return ", ".join(names) or "alert group"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def fmt_rfc3339(t: float) -> str:
    """RFC 3339 for the silence API."""
    return rfc3339(t)
