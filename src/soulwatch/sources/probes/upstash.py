"""Upstash REST probes: Redis over REST (``PING``) and Upstash Vector (``/info``).

The Redis REST probe writes ``redis_up`` and ``redis_ping_duration_seconds``
like the Redis probe, so the same alert rules work for either. The Vector
probe writes ``upstash_vector_up``, ``upstash_vector_count``,
``upstash_vector_pending_count``, ``upstash_vector_index_size_bytes`` and
``upstash_vector_dimension``. The token is sent as a bearer token and never
appears in labels or errors.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from soulwatch.sources.probes.base import ProbeResult, Timer


class _UpstashBase:
    def __init__(
        self,
        token: str | None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timer: Timer = time.perf_counter,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.AsyncClient(
            transport=transport, headers=headers, trust_env=False, timeout=None
        )
        self._timer = timer

    async def _call(
        self, method: str, url: str, result: ProbeResult, body: Any = None
    ) -> Any | None:
        """The ``result`` field of an Upstash answer, or ``None`` with ``result.error`` set."""
        try:
            response = await self._client.request(
                method, url, content=json.dumps(body) if body is not None else None
            )
        except httpx.HTTPError as exc:
            result.error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            return None
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code != 200 or not isinstance(payload, dict) or "result" not in payload:
            detail = payload.get("error") if isinstance(payload, dict) else None
            result.error = f"HTTP {response.status_code}" + (f": {detail}" if detail else "")
            return None
        return payload["result"]

    async def close(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


class UpstashRedisProber(_UpstashBase):
    """``PING`` over Upstash's Redis REST API (``UPSTASH_REDIS_REST_URL``)."""

    async def probe(self, target: str, result: ProbeResult) -> None:
        """POST ``["PING"]`` and expect ``PONG``."""
        result.add("redis_up", 0)
        t0 = self._timer()
        answer = await self._call("POST", target.rstrip("/"), result, ["PING"])
        if answer is None:
            return
        result.add("redis_ping_duration_seconds", self._timer() - t0)
        if answer != "PONG":
            result.error = f"PING answered {answer!r}"
            return
        result.metrics[0] = ("redis_up", {}, 1.0)
        result.success = True


class UpstashVectorProber(_UpstashBase):
    """``GET /info`` of an Upstash Vector index (``UPSTASH_VECTOR_REST_URL``)."""

    async def probe(self, target: str, result: ProbeResult) -> None:
        """Read the index's vector count and dimension."""
        result.add("upstash_vector_up", 0)
        info = await self._call("GET", target.rstrip("/") + "/info", result)
        if info is None:
            return
        if not isinstance(info, dict):
            result.error = "unexpected /info answer"
            return
        for key, name in (
            ("vectorCount", "upstash_vector_count"),
            ("pendingVectorCount", "upstash_vector_pending_count"),
            ("indexSize", "upstash_vector_index_size_bytes"),
            ("dimension", "upstash_vector_dimension"),
        ):
            value = info.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                result.add(name, float(value))
        result.metrics[0] = ("upstash_vector_up", {}, 1.0)
        result.success = True
