"""Test support for sources: a scrapeable app, async bounded polling, storage read-back."""

from __future__ import annotations

import asyncio
import math
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from soulwatch.tsdb.model import Labels, Matcher, is_stale_nan
from soulwatch.tsdb.storage import Storage

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


class Exposition:
    """What the test app serves at /metrics: set ``body``, ``status``, ``delay`` at will."""

    def __init__(self, body: str | bytes = "", content_type: str = TEXT) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.content_type = content_type
        self.status = 200
        self.delay = 0.0
        #: when set, the body is streamed (no Content-Length) as this many 1 MiB chunks
        self.stream_mib = 0
        self.chunks_sent = 0
        self.requests: list[dict[str, str]] = []

    def set(self, body: str | bytes) -> None:
        """Serve ``body`` from now on."""
        self.body = body.encode() if isinstance(body, str) else body


async def chunks(expo: Exposition) -> AsyncIterator[bytes]:
    """``stream_mib`` chunks of 1 MiB of valid exposition lines, counted as they are sent."""
    line = b"filler_metric 1\n"
    chunk = line * (1024 * 1024 // len(line))
    for _ in range(expo.stream_mib):
        expo.chunks_sent += 1
        yield chunk
        await asyncio.sleep(0.005)  # paced, so what was sent when the client stopped shows


def metrics_app(**paths: Exposition) -> Starlette:
    """A Starlette app serving each exposition at ``/<name>`` (``metrics`` -> ``/metrics``)."""

    def endpoint(expo: Exposition) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            expo.requests.append(dict(request.headers))
            if expo.delay:
                await asyncio.sleep(expo.delay)
            if expo.stream_mib:
                return StreamingResponse(chunks(expo), media_type=expo.content_type)
            return Response(expo.body, status_code=expo.status, media_type=expo.content_type)

        return handler

    return Starlette(routes=[Route(f"/{name}", endpoint(e)) for name, e in paths.items()])


class HttpOnly:
    """An HTTP-only ASGI app (prometheus_client's) made to answer uvicorn's lifespan."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await self.app(scope, receive, send)


async def eventually(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``predicate`` on the event loop (real time, bounded) until it is truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")


def samples_of(storage: Storage, name: str, **labels: str) -> dict[Labels, list[tuple[int, float]]]:
    """Every sample of the series named ``name`` matching ``labels``, by label set."""
    matchers = [Matcher.equal("__name__", name)] + [Matcher.equal(k, v) for k, v in labels.items()]
    return {s.labels: list(s) for s in storage.select(matchers, 0, 2**62)}


def only(storage: Storage, name: str, **labels: str) -> list[tuple[int, float]]:
    """The samples of the single series ``name{labels}``."""
    found = samples_of(storage, name, **labels)
    assert len(found) == 1, f"expected one {name} series, found {list(found)}"
    return next(iter(found.values()))


def make_certificate(directory: Path, openssl: str) -> tuple[Path, Path, float]:
    """A self-signed certificate for 127.0.0.1 (30 days): cert path, key path, notAfter."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    end = subprocess.run(
        [openssl, "x509", "-enddate", "-noout", "-in", str(cert)],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout.strip()
    return cert, key, ssl.cert_time_to_seconds(end.split("=", 1)[1])


def show(value: float) -> str:
    """A value as text, telling the staleness marker apart from NaN."""
    if is_stale_nan(value):
        return "stale"
    return "NaN" if math.isnan(value) else repr(value)
