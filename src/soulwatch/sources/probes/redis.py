"""The Redis probe: PING latency, ``INFO`` memory and clients, over ``redis://`` or ``rediss://``.

Writes ``redis_up``, ``redis_ping_duration_seconds``, ``redis_used_memory_bytes``,
``redis_maxmemory_bytes``, ``redis_connected_clients`` and the counter
``redis_connection_errors_total`` (failed probes since soulwatch started). Each
run opens a fresh connection, so a lost connection shows at the next run.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from soulwatch.exceptions import MissingExtraError
from soulwatch.sources.probes.base import ProbeResult, Timer
from soulwatch.sources.probes.config import RedisProbe


def redacted(url: str) -> str:
    """``url`` without its password, fit for labels and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    netloc = f"{user}:***@{parts.hostname}" if user else f":***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class RedisProber:
    """PINGs and INFOs a Redis server with redis-py's asyncio client."""

    def __init__(self, config: RedisProbe, *, timer: Timer = time.perf_counter) -> None:
        self.config = config
        self._timer = timer
        self.connection_errors = 0

    async def probe(self, target: str, result: ProbeResult) -> None:
        """Connect, PING, INFO, disconnect."""
        try:
            import redis.asyncio as aioredis  # lazily: redis is an optional extra
            from redis.exceptions import RedisError
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MissingExtraError("redis", "redis") from exc
        kwargs: dict[str, Any] = {}
        tls = self.config.tls_config
        if tls is not None and target.startswith("rediss://"):
            if tls.ca_file:
                kwargs["ssl_ca_certs"] = tls.ca_file
            if tls.insecure_skip_verify:
                kwargs["ssl_cert_reqs"] = "none"
        client = aioredis.Redis.from_url(target, **kwargs)
        ok = False
        # written first, so that a timeout still reports the counter and redis_up 0
        result.add("redis_up", 0)
        errors_index = len(result.metrics)
        result.add("redis_connection_errors_total", self.connection_errors)
        try:
            t0 = self._timer()
            await client.ping()
            result.add("redis_ping_duration_seconds", self._timer() - t0)
            info = await client.info()
            result.add("redis_used_memory_bytes", float(info.get("used_memory", 0)))
            result.add("redis_maxmemory_bytes", float(info.get("maxmemory", 0)))
            result.add("redis_connected_clients", float(info.get("connected_clients", 0)))
            ok = True
        except (RedisError, OSError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            if not ok:
                self.connection_errors += 1
                result.metrics[errors_index] = (
                    "redis_connection_errors_total",
                    {},
                    float(self.connection_errors),
                )
            await client.aclose()
        if ok:
            result.metrics[0] = ("redis_up", {}, 1.0)
            result.success = True

    async def close(self) -> None:
        """Nothing held between runs."""
