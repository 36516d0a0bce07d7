"""How one queue posts its requests: a connection per shard, on httpx's transport.

A shard sends its requests one after another, so each shard has a transport
of its own with one connection: a shared pool would look over every idle
connection at each request. Requests go straight to the transport, not
through an ``httpx.AsyncClient``: the client's per-request work (auth flow,
cookies, redirect bookkeeping, event hooks) is about a quarter of a
request's CPU and remote write needs none of it. Credentials become headers once; a
``307``/``308`` redirect (the ones that keep a POST a POST) is followed when
``follow_redirects`` is on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

import httpx

from soulwatch import __version__
from soulwatch.exceptions import ConfigError
from soulwatch.http_auth import authorization_header, basic_credentials
from soulwatch.remote.config import RemoteWriteConfig
from soulwatch.remote.proto import PROTOCOL_HEADERS
from soulwatch.sources.scrape.manager import ssl_context

#: The most redirects followed for one request.
MAX_REDIRECTS = 5


def request_headers(config: RemoteWriteConfig) -> dict[str, str]:
    """Every header of a request, credentials included; ConfigError for an unreadable secret."""
    headers = {**config.headers, **PROTOCOL_HEADERS, "User-Agent": f"soulwatch/{__version__}"}
    credentials = authorization_header(config, f"remote_write {config.queue_name!r}")
    if credentials is not None:
        headers["Authorization"] = credentials
    else:
        parts = urlsplit(config.url)
        if parts.username is not None:  # credentials in the URL, as an HTTP client reads them
            headers["Authorization"] = basic_credentials(
                unquote(parts.username), unquote(parts.password or "")
            )
    return headers


class Poster:
    """Posts bodies to one queue's URL, a connection per shard.

    Building it reads the secrets and the TLS files, so a bad one is a
    :class:`~soulwatch.exceptions.ConfigError` at start. ``transport``, if
    given, replaces every shard's transport (tests, scenario runs).
    """

    def __init__(
        self, config: RemoteWriteConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._url = httpx.URL(config.url).copy_with(username=None, password=None)
        self._headers = request_headers(config)
        self._follow = config.follow_redirects
        self._extensions: dict[str, Any] = {
            "timeout": httpx.Timeout(config.remote_timeout).as_dict()
        }
        try:
            # Built once for every shard (loading the CAs is costly), also for
            # http:// since a redirect may lead to https://.
            self._ssl = ssl_context(config.tls_config)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"remote_write {config.queue_name!r}: tls_config: {exc}") from None
        self._given = transport
        self._transports: list[httpx.AsyncBaseTransport] = []

    def _transport(self, shard: int) -> httpx.AsyncBaseTransport:
        if self._given is not None:
            return self._given
        while len(self._transports) <= shard:
            self._transports.append(
                httpx.AsyncHTTPTransport(
                    verify=self._ssl,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
            )
        return self._transports[shard]

    async def post(self, body: bytes, shard: int = 0) -> httpx.Response:
        """POST ``body`` on ``shard``'s connection; the response is read. Raises httpx.HTTPError."""
        transport = self._transport(shard)
        url = self._url
        headers = self._headers
        for _ in range(MAX_REDIRECTS + 1):
            request = httpx.Request(
                "POST", url, headers=headers, content=body, extensions=self._extensions
            )
            response = await transport.handle_async_request(request)
            response.request = request
            await response.aread()
            location = response.headers.get("Location")
            if not (self._follow and response.status_code in (307, 308) and location):
                return response
            url = url.join(location)
            if (url.scheme, url.host, url.port) != (
                self._url.scheme,
                self._url.host,
                self._url.port,
            ):
                # Credentials are for the configured receiver only, as HTTP clients do.
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
        raise httpx.TooManyRedirects(f"more than {MAX_REDIRECTS} redirects", request=request)

    async def aclose(self) -> None:
        """Close every connection."""
        transports, self._transports = self._transports, []
        for transport in transports:
            await transport.aclose()
