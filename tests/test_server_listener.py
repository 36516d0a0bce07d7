"""``soulwatch run``'s listening socket: replies are not held back by Nagle's algorithm."""

from __future__ import annotations

import asyncio
import socket

import pytest

from soulwatch.server import bind_listener


def test_connections_of_the_listener_send_at_once() -> None:
    # With Nagle's algorithm on, a reply written as headers then body waits for
    # the client's delayed ACK (about 40 ms) on every request but a connection's first.
    async def accepted_nodelay() -> int:
        sock = bind_listener("127.0.0.1", 0)
        options: list[int] = []

        def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            conn = writer.get_extra_info("socket")
            options.append(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=sock)
        async with server:
            _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
            for _ in range(100):
                if options:
                    break
                await asyncio.sleep(0.01)
            writer.close()
        return options[0]

    assert asyncio.run(accepted_nodelay()) != 0


def test_a_taken_port_is_an_error() -> None:
    first = bind_listener("127.0.0.1", 0)
    first.listen()
    try:
        with pytest.raises(OSError, match="in use"):
            bind_listener("127.0.0.1", first.getsockname()[1])
    finally:
        first.close()
