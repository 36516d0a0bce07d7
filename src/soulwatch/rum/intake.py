"""``/rum/v1/agent.js``, ``/rum/v1/agent.mjs`` and ``POST /rum/v1/events``.

The intake checks, in order: the body's size (413), its schema (400), the
site key and the page's ``Origin`` (403), the user agent (bots are answered
204 and not counted), and the rate per address and per session (429). CORS
headers are sent only to the configured origins, and only on these routes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.api.http import HttpError, read_body
from soulwatch.clock import Clock
from soulwatch.rum.agent import Script, module_script, tag_script
from soulwatch.rum.config import RumConfig
from soulwatch.rum.events import BeaconError, parse_batch
from soulwatch.rum.limits import RateLimiter
from soulwatch.rum.recorder import Rejection, RumRecorder


class RumIntake:
    """The routes of real-user monitoring, feeding a :class:`RumRecorder`."""

    def __init__(self, config: RumConfig, recorder: RumRecorder, clock: Clock) -> None:
        self._config = config
        self._recorder = recorder
        self._clock = clock
        self._origins = {o for site in config.sites for o in site.origins}
        self._site_origins = {site.key: set(site.origins) for site in config.sites}
        self._bots = [b.lower() for b in config.bot_user_agents]
        self._by_address = RateLimiter(config.address_events_per_minute, 50_000)
        self._by_session = RateLimiter(
            config.session_events_per_minute, config.max_tracked_sessions
        )

    def routes(self) -> list[Route]:
        """The Starlette routes."""
        return [
            Route("/rum/v1/agent.js", self.agent_tag, methods=["GET", "HEAD"]),
            Route("/rum/v1/agent.mjs", self.agent_module, methods=["GET", "HEAD"]),
            Route("/rum/v1/events", self.events, methods=["POST", "OPTIONS"]),
        ]

    def _cors(self, request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin not in self._origins:
            return {}
        # sendBeacon sends credentials, so the origin is echoed, never '*'.
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }

    async def agent_tag(self, request: Request) -> Response:
        """The agent for a ``<script>`` tag."""
        return self._serve(request, tag_script())

    async def agent_module(self, request: Request) -> Response:
        """The agent as an ES module (fetched with CORS, hence the origin check)."""
        return self._serve(request, module_script())

    def _serve(self, request: Request, script: Script) -> Response:
        headers = {
            "Cache-Control": "public, max-age=3600",
            "ETag": script.etag,
            "Vary": "Accept-Encoding, Origin",
            **self._cors(request),
        }
        if request.headers.get("if-none-match") == script.etag:
            return Response(status_code=304, headers=headers)
        body = script.body
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = script.gzipped
            headers["Content-Encoding"] = "gzip"
        return Response(body, media_type="text/javascript; charset=utf-8", headers=headers)

    async def events(self, request: Request) -> Response:
        """Accept one batch of beacons."""
        cors = self._cors(request)
        if request.method == "OPTIONS":
            if not cors:
                return Response("origin not allowed\n", status_code=403)
            cors.update(
                {
                    "Access-Control-Allow-Methods": "POST",
                    "Access-Control-Allow-Headers": "Content-Type",
                    "Access-Control-Max-Age": "86400",
                }
            )
            return Response(status_code=204, headers=cors)
        status, message, retry = self._accept(await self._body(request), request)
        headers = dict(cors)
        if retry:
            headers["Retry-After"] = str(retry)
        return Response(message, status_code=status, headers=headers, media_type="text/plain")

    async def _body(self, request: Request) -> bytes | HttpError:
        try:
            return await read_body(request, self._config.max_body_bytes, text=True)
        except HttpError as exc:
            return exc

    def _accept(self, body: bytes | HttpError, request: Request) -> tuple[int, str, int]:
        if isinstance(body, HttpError):
            self._recorder.reject("unknown", Rejection.TOO_LARGE)
            return 413, f"body larger than {self._config.max_body_bytes} bytes\n", 0
        try:
            batch = parse_batch(body, self._config.max_events_per_batch)
        except BeaconError as exc:
            self._recorder.reject("unknown", Rejection.MALFORMED)
            return 400, f"{exc}\n", 0
        site = self._recorder.site_name(batch.key)
        if site is None:
            self._recorder.reject("unknown", Rejection.FORBIDDEN)
            return 403, "unknown site key\n", 0
        if request.headers.get("origin", "") not in self._site_origins[batch.key]:
            self._recorder.reject(site, Rejection.FORBIDDEN)
            return 403, "origin not allowed for this site\n", 0
        agent = request.headers.get("user-agent", "").lower()
        if any(bot in agent for bot in self._bots):
            self._recorder.reject(site, Rejection.BOT)
            return 204, "", 0
        cost = max(1, len(batch.events))
        now = self._clock.monotonic()
        address = request.client.host if request.client else ""
        for limiter, key in ((self._by_address, address), (self._by_session, batch.session)):
            if not limiter.allow(key, cost, now):
                self._recorder.reject(site, Rejection.RATE_LIMITED)
                return 429, "too many events; slow down\n", limiter.retry_after(cost)
        self._recorder.record(batch)
        return 204, "", 0
