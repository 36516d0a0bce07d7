"""Read-only access to the platform's Redis, over redis-py or Upstash's REST API.

The collectors need only a few commands (``SCAN``, ``HMGET``, ``ZREVRANGE``, ``ZCARD``),
always batched, so both transports implement the same small protocol and
count the round trips they make (a collector cycle must stay bounded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from soulwatch.exceptions import MissingExtraError, SoulwatchError


class RedisReadError(SoulwatchError):
    """The platform's Redis could not be read."""


@runtime_checkable
class RedisReader(Protocol):
    """The commands the collectors use; ``round_trips`` counts requests made."""

    round_trips: int

    async def scan(self, cursor: int, match: str, count: int) -> tuple[int, list[str]]:
        """One ``SCAN cursor MATCH match COUNT count``."""
        ...

    async def hmget_many(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[str | None]]:
        """``HMGET key fields...`` for every key, in one round trip."""
        ...

    async def zrevrange_top(self, keys: Sequence[str]) -> list[tuple[str, float] | None]:
        """The highest-scored member of each sorted set, in one round trip."""
        ...

    async def zcard_many(self, keys: Sequence[str]) -> list[int]:
        """The size of each sorted set (0 when it does not exist), in one round trip."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class RedisPyReader:
    """A :class:`RedisReader` over ``redis.asyncio`` (``redis://`` and ``rediss://``)."""

    def __init__(self, url: str, *, timeout: float = 5.0, client: Any = None) -> None:
        if client is None:
            try:
                import redis.asyncio as aioredis
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise MissingExtraError("redis", "redis") from exc
            client = aioredis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
        self._client = client
        self.round_trips = 0

    async def _run(self, coro: Any) -> Any:
        self.round_trips += 1
        try:
            return await coro
        except Exception as exc:  # redis-py raises many types; the collector needs one
            raise RedisReadError(f"redis: {exc}") from exc

    async def scan(self, cursor: int, match: str, count: int) -> tuple[int, list[str]]:
        """One ``SCAN``."""
        next_cursor, keys = await self._run(self._client.scan(cursor, match=match, count=count))
        return int(next_cursor), [k for k in (_text(x) for x in keys) if k is not None]

    async def hmget_many(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[str | None]]:
        """Pipelined ``HMGET``."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, list(fields))
        rows = await self._run(pipe.execute())
        return [[_text(v) for v in row] for row in rows]

    async def zrevrange_top(self, keys: Sequence[str]) -> list[tuple[str, float] | None]:
        """Pipelined ``ZREVRANGE key 0 0 WITHSCORES``."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.zrevrange(key, 0, 0, withscores=True)
        rows = await self._run(pipe.execute())
        out: list[tuple[str, float] | None] = []
        for row in rows:
            if row:
                member, score = row[0]
                out.append((_text(member) or "", float(score)))
            else:
                out.append(None)
        return out

    async def zcard_many(self, keys: Sequence[str]) -> list[int]:
        """Pipelined ``ZCARD``."""
        if not keys:
            return []
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.zcard(key)
        return [int(n or 0) for n in await self._run(pipe.execute())]

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class UpstashRestReader:
    """A :class:`RedisReader` over Upstash's REST API (``/pipeline`` with a bearer token)."""

    def __init__(
        self, url: str, token: str, *, timeout: float = 5.0, transport: Any = None
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MissingExtraError("httpx", "http") from exc
        self._client = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self.round_trips = 0

    async def _pipeline(self, commands: list[list[str]]) -> list[Any]:
        self.round_trips += 1
        try:
            response = await self._client.post("/pipeline", json=commands)
        except Exception as exc:  # httpx transport errors
            raise RedisReadError(f"upstash: {exc}") from exc
        if response.status_code != 200:
            raise RedisReadError(f"upstash: HTTP {response.status_code}: {response.text[:200]}")
        results = response.json()
        out = []
        for item in results:
            if "error" in item:
                raise RedisReadError(f"upstash: {item['error']}")
            out.append(item.get("result"))
        return out

    async def scan(self, cursor: int, match: str, count: int) -> tuple[int, list[str]]:
        """One ``SCAN``."""
        (result,) = await self._pipeline(
            [["SCAN", str(cursor), "MATCH", match, "COUNT", str(count)]]
        )
        next_cursor, keys = result
        return int(next_cursor), [str(k) for k in keys]

    async def hmget_many(
        self, keys: Sequence[str], fields: Sequence[str]
    ) -> list[list[str | None]]:
        """Pipelined ``HMGET``."""
        if not keys:
            return []
        rows = await self._pipeline([["HMGET", key, *fields] for key in keys])
        return [[_text(v) for v in row] for row in rows]

    async def zrevrange_top(self, keys: Sequence[str]) -> list[tuple[str, float] | None]:
        """Pipelined ``ZREVRANGE key 0 0 WITHSCORES``."""
        if not keys:
            return []
        rows = await self._pipeline([["ZREVRANGE", key, "0", "0", "WITHSCORES"] for key in keys])
        return [(str(row[0]), float(row[1])) if row else None for row in rows]

    async def zcard_many(self, keys: Sequence[str]) -> list[int]:
        """Pipelined ``ZCARD``."""
        if not keys:
            return []
        return [int(n or 0) for n in await self._pipeline([["ZCARD", key] for key in keys])]

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
