"""A small in-process Redis stand-in for the demo when no ``redis-server`` is installed.

It speaks RESP2, and RESP3 after ``HELLO 3`` (as redis-py 8 asks), over TCP,
and implements the commands the demo platform, soulwatch's collectors and
probes, and the SDK's readiness check use: hashes and sorted sets, no
strings. It is not a Redis: no persistence, no expiry, no transactions. When a
real ``redis-server`` is on the machine the demo uses that instead.
"""

from __future__ import annotations

import asyncio
import fnmatch
import time
from collections.abc import Callable

Reply = bytes | int | float | str | list["Reply"] | dict[str, "Reply"] | None | Exception


class MiniRedis:
    """An asyncio RESP2 server holding hashes and sorted sets in memory."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._hashes: dict[str, dict[str, str]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._server: asyncio.Server | None = None
        self._clients = 0
        self._started = time.monotonic()
        self._commands: dict[str, Callable[[list[str]], Reply]] = {
            "PING": lambda a: "PONG" if not a else a[0].encode(),
            "ECHO": lambda a: a[0].encode(),
            "SELECT": lambda a: "OK",
            "CLIENT": lambda a: "OK",
            "INFO": self._info,
            "HSET": self._hset,
            "HGET": lambda a: _enc(self._hashes.get(a[0], {}).get(a[1])),
            "HMGET": lambda a: [_enc(self._hashes.get(a[0], {}).get(f)) for f in a[1:]],
            "HGETALL": lambda a: [_enc(x) for kv in self._hashes.get(a[0], {}).items() for x in kv],
            "DEL": self._del,
            "EXISTS": lambda a: sum(1 for k in a if k in self._hashes or k in self._zsets),
            "TYPE": self._type,
            "SCAN": self._scan,
            "ZADD": self._zadd,
            "ZCARD": lambda a: len(self._zsets.get(a[0], {})),
            "ZREVRANGE": self._zrevrange,
            "DBSIZE": lambda a: len(self._hashes) + len(self._zsets),
            "FLUSHALL": self._flush,
        }

    @property
    def url(self) -> str:
        """``redis://host:port/0``."""
        return f"redis://{self.host}:{self.port}/0"

    async def start(self) -> None:
        """Listen; ``port`` 0 picks a free one."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients += 1
        resp3 = False
        try:
            while True:
                command = await _read_command(reader)
                if command is None:
                    break
                name, args = command[0].upper(), command[1:]
                handler = self._commands.get(name)
                reply: Reply
                if name == "HELLO":
                    resp3 = bool(args) and args[0] == "3"
                    reply = self._hello(3 if resp3 else 2)
                elif handler is None:
                    reply = ValueError(f"ERR unknown command '{command[0]}'")
                else:
                    try:
                        reply = handler(args)
                    except (IndexError, ValueError) as exc:
                        reply = ValueError(f"ERR wrong arguments for '{name}': {exc}")
                writer.write(_encode(reply, resp3=resp3))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._clients -= 1
            writer.close()

    def _hello(self, proto: int) -> Reply:
        return {
            "server": b"redis",
            "version": b"7.0.0",
            "proto": proto,
            "id": 1,
            "mode": b"standalone",
            "role": b"master",
            "modules": [],
        }

    def _info(self, args: list[str]) -> Reply:
        used = sum(
            len(k) + sum(len(f) + len(v) for f, v in h.items()) for k, h in self._hashes.items()
        )
        used += sum(len(k) + 16 * len(z) for k, z in self._zsets.items())
        lines = [
            "# Server",
            "redis_version:7.0.0-soulwatch-demo",
            f"uptime_in_seconds:{int(time.monotonic() - self._started)}",
            "# Clients",
            f"connected_clients:{self._clients}",
            "# Memory",
            f"used_memory:{used + 1_000_000}",
            "maxmemory:268435456",
        ]
        return ("\r\n".join(lines) + "\r\n").encode()

    def _hset(self, args: list[str]) -> Reply:
        h = self._hashes.setdefault(args[0], {})
        added = 0
        for i in range(1, len(args) - 1, 2):
            added += args[i] not in h
            h[args[i]] = args[i + 1]
        return added

    def _del(self, args: list[str]) -> Reply:
        n = 0
        for key in args:
            n += (self._hashes.pop(key, None) is not None) + (
                self._zsets.pop(key, None) is not None
            )
        return n

    def _type(self, args: list[str]) -> Reply:
        if args[0] in self._hashes:
            return "hash"
        return "zset" if args[0] in self._zsets else "none"

    def _scan(self, args: list[str]) -> Reply:
        cursor = int(args[0])
        match, count = "*", 10
        for i in range(1, len(args) - 1, 2):
            if args[i].upper() == "MATCH":
                match = args[i + 1]
            elif args[i].upper() == "COUNT":
                count = int(args[i + 1])
        keys = sorted([*self._hashes, *self._zsets])
        chunk = keys[cursor : cursor + count]
        next_cursor = cursor + count if cursor + count < len(keys) else 0
        found: list[Reply] = [k.encode() for k in chunk if fnmatch.fnmatchcase(k, match)]
        return [str(next_cursor).encode(), found]

    def _zadd(self, args: list[str]) -> Reply:
        z = self._zsets.setdefault(args[0], {})
        added = 0
        for i in range(1, len(args) - 1, 2):
            member = args[i + 1]
            added += member not in z
            z[member] = float(args[i])
        return added

    def _zrevrange(self, args: list[str]) -> Reply:
        z = self._zsets.get(args[0], {})
        start, stop = int(args[1]), int(args[2])
        ordered = sorted(z.items(), key=lambda kv: (-kv[1], kv[0]))
        stop = len(ordered) - 1 if stop < 0 else stop
        picked = ordered[start : stop + 1]
        if len(args) > 3 and args[3].upper() == "WITHSCORES":
            return [[m.encode(), s] for m, s in picked]
        return [m.encode() for m, _ in picked]

    def _flush(self, args: list[str]) -> Reply:
        self._hashes.clear()
        self._zsets.clear()
        return "OK"


def _enc(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


async def _read_command(reader: asyncio.StreamReader) -> list[str] | None:
    line = await reader.readline()
    if not line:
        return None
    if not line.startswith(b"*"):  # inline command
        return line.decode().split()
    out = []
    for _ in range(int(line[1:])):
        header = await reader.readline()
        size = int(header[1:])
        data = await reader.readexactly(size + 2)
        out.append(data[:-2].decode("utf-8", errors="replace"))
    return out


def _encode(reply: Reply, *, resp3: bool) -> bytes:
    if isinstance(reply, Exception):
        return f"-{reply}\r\n".encode()
    if reply is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if isinstance(reply, bool | int):
        return f":{int(reply)}\r\n".encode()
    if isinstance(reply, float):
        return f",{reply!r}\r\n".encode() if resp3 else _encode(repr(reply).encode(), resp3=False)
    if isinstance(reply, str):
        return f"+{reply}\r\n".encode()
    if isinstance(reply, bytes):
        return b"$" + str(len(reply)).encode() + b"\r\n" + reply + b"\r\n"
    if isinstance(reply, dict):
        if resp3:
            head = b"%" + str(len(reply)).encode() + b"\r\n"
            return head + b"".join(
                _encode(k.encode(), resp3=True) + _encode(v, resp3=True) for k, v in reply.items()
            )
        flat: list[Reply] = [x for k, v in reply.items() for x in (k.encode(), v)]
        return _encode(flat, resp3=False)
    if not resp3 and reply and all(isinstance(r, list) and len(r) == 2 for r in reply):
        # RESP2 has no nested pairs for WITHSCORES: flatten them.
        reply = [x for pair in reply if isinstance(pair, list) for x in pair]
    head = b"*" + str(len(reply)).encode() + b"\r\n"
    return head + b"".join(_encode(r, resp3=resp3) for r in reply)
