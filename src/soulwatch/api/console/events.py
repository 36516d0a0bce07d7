"""Live updates of open console pages, as Server-Sent Events.

A page opens ``/-/console/events?tick=<seconds>`` with ``EventSource`` and
re-fetches its ``<main>`` when told to: ``event: alerts`` as soon as an
alert or a heartbeat check changes state or a silence is created, changed
or expired (a watcher compares a small signature of them every ``poll``
seconds, whoever is watching), and
``event: tick`` every ``tick`` seconds, for the tiles' values. A comment
line every ``keepalive`` seconds keeps proxies from closing an idle stream.

Bounded: at most ``max_clients`` streams at once (the next is answered 503
and its page keeps polling), each client's queue holds a few events (a slow
client misses "refresh" hints it would have merged anyway), and
:meth:`LiveEvents.close` ends every stream at once, so the HTTP server stops
without waiting for its graceful timeout while browsers are connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

#: Events a client's queue holds; more are dropped (each one only says "refresh").
QUEUE_SIZE = 4
#: Accepted ``tick`` values, seconds.
TICK_RANGE = (1.0, 3600.0)

Signature = Callable[[], tuple[Any, dict[str, int]]]


class _Client:
    def __init__(self, tick: float) -> None:
        self.tick = tick
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)

    def offer(self, message: bytes | None) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            if message is None:
                # The end must get through: it replaces a pending hint.
                self.queue.get_nowait()
                self.queue.put_nowait(None)


class LiveEvents:
    """The open event streams and the watcher that feeds them.

    ``signature`` returns something comparable that changes when a page
    should refresh at once, with a summary sent along (e.g. alert counts).
    """

    def __init__(
        self,
        signature: Signature,
        *,
        max_clients: int,
        poll: float = 1.0,
        keepalive: float = 15.0,
    ) -> None:
        self._signature = signature
        self.max_clients = max_clients
        self._poll = poll
        self._keepalive = keepalive
        self._clients: set[_Client] = set()
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def clients(self) -> int:
        """Streams open now."""
        return len(self._clients)

    def response(self, tick: str) -> Response:
        """The stream for one page, or a refusal it answers by polling."""
        if self._closed:
            return PlainTextResponse("shutting down\n", 503)
        try:
            seconds = float(tick or 10)
        except ValueError:
            return PlainTextResponse(f"tick: {tick!r} is not a number of seconds\n", 400)
        low, high = TICK_RANGE
        if not low <= seconds <= high:
            return PlainTextResponse(f"tick: must be between {low:g} and {high:g} seconds\n", 400)
        if len(self._clients) >= self.max_clients:
            reply = PlainTextResponse(
                f"too many live pages ({self.max_clients}); this page refreshes by polling\n", 503
            )
            reply.headers["retry-after"] = "30"
            return reply
        client = _Client(seconds)
        self._clients.add(client)
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        return _EventStream(self, client)

    def leave(self, client: _Client) -> None:
        """Forget a stream (its page went away, or the stream ended)."""
        self._clients.discard(client)

    def close(self) -> None:
        """End every stream now and refuse new ones (the server is stopping)."""
        self._closed = True
        for client in list(self._clients):
            client.offer(None)
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch(self) -> None:
        last, _ = self._signature()
        # Runs while anyone listens; the next client starts it again.
        while self._clients and not self._closed:
            await asyncio.sleep(self._poll)
            current, summary = self._signature()
            if current != last:
                last = current
                message = _event("alerts", json.dumps(summary))
                for client in list(self._clients):
                    client.offer(message)

    async def stream(self, client: _Client, send: Send, disconnected: asyncio.Event) -> None:
        """Send ``client``'s events until it leaves or the streams close."""
        loop = asyncio.get_running_loop()
        next_tick = loop.time() + client.tick
        next_ping = loop.time() + self._keepalive
        # Reconnect after 3 s if the stream breaks (EventSource's own retry).
        await _body(send, b"retry: 3000\n\n")
        while not disconnected.is_set():
            now = loop.time()
            wait = max(0.0, min(next_tick, next_ping) - now)
            try:
                message = await asyncio.wait_for(client.queue.get(), wait)
            except TimeoutError:
                now = loop.time()
                if now >= next_tick:
                    message = _event("tick", "{}")
                    next_tick = now + client.tick
                else:
                    message = b": keepalive\n\n"
            if message is None or disconnected.is_set():
                return
            next_ping = loop.time() + self._keepalive
            await _body(send, message)


class _EventStream(StreamingResponse):
    """``text/event-stream`` that ends on the client's disconnect or on close."""

    def __init__(self, hub: LiveEvents, client: _Client) -> None:
        super().__init__((), media_type="text/event-stream")
        self.headers["cache-control"] = "no-store"
        # Proxies (nginx) would otherwise buffer the stream.
        self.headers["x-accel-buffering"] = "no"
        self._hub = hub
        self._client = client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = asyncio.Event()

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            self._client.offer(None)

        watcher = asyncio.get_running_loop().create_task(watch())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            with contextlib.suppress(OSError):
                await self._hub.stream(self._client, send, disconnected)
                if not disconnected.is_set():
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            watcher.cancel()
            self._hub.leave(self._client)


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


async def _body(send: Send, chunk: bytes) -> None:
    await send({"type": "http.response.body", "body": chunk, "more_body": True})
