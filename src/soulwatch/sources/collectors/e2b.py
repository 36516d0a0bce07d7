"""The E2B collector: sandbox concurrency against the plan's limit, and monthly sandbox-hours.

Running sandboxes come from E2B's API (``GET /v2/sandboxes?state=running``
with the ``X-API-KEY`` header, paged by the ``x-next-token`` response header —
the listing the ``e2b`` SDK's ``Sandbox.list()`` performs) when an API key is
configured. Sandbox-hours used this month are computed from agent-job
durations (every agent job runs in one sandbox), since E2B bills by sandbox
time; they are compared with the configured monthly quota — the plan's
"E2B Quota Warning".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from soulwatch.exceptions import MissingExtraError, SoulwatchError
from soulwatch.sources.collectors.base import CollectedSample, sample
from soulwatch.sources.collectors.config import E2BCollectorConfig

_MAX_PAGES = 50  # 50 pages of 100: far beyond any plan's concurrency limit


class E2BError(SoulwatchError):
    """E2B's API answered with an error."""


class E2BCollector:
    """Collects ``e2b_*`` metrics."""

    name = "e2b"

    def __init__(
        self,
        config: E2BCollectorConfig | None = None,
        *,
        hours_used: Callable[[], float] | None = None,
        transport: Any = None,
    ) -> None:
        self.config = config or E2BCollectorConfig()
        self._hours_used = hours_used
        self._client: Any = None
        if self.config.api_key:
            try:
                import httpx
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise MissingExtraError("httpx", "http") from exc
            self._client = httpx.AsyncClient(
                base_url=self.config.api_url.rstrip("/"),
                headers={"X-API-KEY": self.config.api_key},
                timeout=self.config.timeout_seconds,
                transport=transport,
            )

    async def running_sandboxes(self) -> int:
        """How many sandboxes are running now, summed over every page of the listing."""
        assert self._client is not None
        total = 0
        token: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"state": "running", "limit": "100"}
            if token:
                params["nextToken"] = token
            response = await self._client.get("/v2/sandboxes", params=params)
            if response.status_code != 200:
                raise E2BError(f"e2b: HTTP {response.status_code}: {response.text[:200]}")
            total += len(response.json())
            token = response.headers.get("x-next-token")
            if not token:
                break
        return total

    async def collect(self) -> list[CollectedSample]:
        """One cycle."""
        out = [
            sample("e2b_sandbox_limit", self.config.sandbox_limit),
            sample("e2b_sandbox_hours_quota", self.config.monthly_hours_quota),
        ]
        if self._hours_used is not None:
            out.append(sample("e2b_sandbox_hours_used", self._hours_used()))
        if self._client is not None:
            out.append(sample("e2b_sandboxes_running", await self.running_sandboxes()))
        return out

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
