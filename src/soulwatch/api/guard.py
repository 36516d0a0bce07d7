"""Pure ASGI middleware in front of every route: the URI length limit and CORS.

A request whose path and query string are longer than ``api.max_uri_bytes``
is answered ``414 URI Too Long`` before any route sees it (uvicorn is told to
read request heads a little larger than that, so the answer is a status, not
a reset connection).

Browsers get CORS headers only from the origins listed in
``api.cors_allowed_origins``, and only on the paths a web page may call
directly (the heartbeat pings); every other response carries no
``Access-Control-Allow-Origin`` at all, so a page elsewhere cannot read the
API with a logged-in user's browser.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from soulwatch.config import ApiConfig

#: Paths a browser page may call across origins (when its origin is allowed).
CORS_PATHS = ("/ping/",)
_ALLOW_METHODS = "GET, POST, HEAD"
_ALLOW_HEADERS = "Content-Type"
_HEAD_MARGIN = 64 * 1024


def max_request_head_bytes(api: ApiConfig) -> int:
    """How large a request head uvicorn must accept so the 414 can be answered."""
    return api.max_uri_bytes + _HEAD_MARGIN


class RequestGuard:
    """Answers 414 to over-long URIs and adds CORS headers for allowed origins."""

    def __init__(self, app: ASGIApp, api: Callable[[], ApiConfig]) -> None:
        self.app = app
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        api = self.api()
        length = len(scope.get("raw_path") or scope["path"].encode()) + len(
            scope.get("query_string", b"")
        )
        if length > api.max_uri_bytes:
            await _plain(send, 414, f"URI too long: at most {api.max_uri_bytes} bytes\n")
            return
        origin = _allowed_origin(scope, api)
        if origin is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await _preflight(send, origin)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out["Access-Control-Allow-Origin"] = origin
                out.add_vary_header("Origin")
            await send(message)

        await self.app(scope, receive, send_with_cors)


def _allowed_origin(scope: Scope, api: ApiConfig) -> str | None:
    if not api.cors_allowed_origins or not scope["path"].startswith(CORS_PATHS):
        return None
    origin = Headers(scope=scope).get("origin")
    if origin is None:
        return None
    if "*" in api.cors_allowed_origins:
        return "*"
    return origin if origin in api.cors_allowed_origins else None


async def _preflight(send: Send, origin: str) -> None:
    headers = [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-methods", _ALLOW_METHODS.encode()),
        (b"access-control-allow-headers", _ALLOW_HEADERS.encode()),
        (b"access-control-max-age", b"600"),
        (b"vary", b"Origin"),
        (b"content-length", b"0"),
    ]
    await send({"type": "http.response.start", "status": 204, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
