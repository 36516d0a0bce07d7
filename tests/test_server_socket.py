"""The socket ``soulwatch run`` serves on: its connections answer without Nagle's delay."""

from __future__ import annotations

import asyncio
import socket

import pytest

from soulwatch.exceptions import SoulwatchError
from soulwatch.server import listen_socket
from tests.helpers import free_port


class _Accepted(asyncio.Protocol):
    def __init__(self, seen: asyncio.Future[int]) -> None:
        self.seen = seen

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        self.seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.close()


async def _nodelay_of_accepted(listen: str) -> int:
    """Serve on ``listen_socket`` as uvicorn does; TCP_NODELAY of a connection it accepts."""
    loop = asyncio.get_running_loop()
    seen: asyncio.Future[int] = loop.create_future()
    sock = listen_socket(listen)
    server = await loop.create_server(lambda: _Accepted(seen), sock=sock)
    try:
        host, port = sock.getsockname()[:2]
        _, writer = await asyncio.open_connection(host, port)
        try:
            return await asyncio.wait_for(seen, 5)
        finally:
            writer.close()
    finally:
        server.close()
        await server.wait_closed()


def test_accepted_connections_send_at_once() -> None:
    # With Nagle's algorithm on, an answer's body (written after its headers)
    # waited for the client's delayed ACK: 40 ms per answer on kept-alive connections.
    assert asyncio.run(_nodelay_of_accepted(f"127.0.0.1:{free_port()}")) != 0


def test_a_taken_address_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SoulwatchError, match=f"cannot listen on 127.0.0.1:{port}"):
            listen_socket(f"127.0.0.1:{port}").close()
