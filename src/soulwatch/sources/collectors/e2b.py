"""The E2B collector: sandbox concurrency against the plan's limit, and monthly sandbox-hours.

Running sandboxes come from E2B's listing when an API key is configured:
through the ``e2b`` SDK's ``AsyncSandbox.list()`` when the SDK is installed
(``pip install 'soulwatch[e2b]'``), else by the same HTTP call the SDK makes
(``GET /v2/sandboxes?state=running`` with the ``X-API-KEY`` header, paged by
the ``x-next-token`` response header), so the monitor needs no extra for it.

Sandbox-hours used this month are computed from agent-job durations (every
agent job runs in one sandbox), since E2B bills by sandbox time; they are
compared with the configured monthly quota — the plan's "E2B Quota Warning".
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from soulwatch.exceptions import MissingExtraError, SoulwatchError
from soulwatch.sources.collectors.base import CollectedSample, sample
from soulwatch.sources.collectors.config import E2BCollectorConfig

_MAX_PAGES = 50  # 50 pages of 100: far beyond any plan's concurrency limit


def _sdk_installed() -> bool:
    return importlib.util.find_spec("e2b") is not None


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
        use_sdk: bool | None = None,
    ) -> None:
        self.config = config or E2BCollectorConfig()
        self._hours_used = hours_used
        self._client: Any = None
        #: The SDK when it is installed (and no test transport is injected).
        self._use_sdk = bool(self.config.api_key) and (
            use_sdk if use_sdk is not None else transport is None and _sdk_installed()
        )
        if self.config.api_key and not self._use_sdk:
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
        if self._use_sdk:
            return await self._running_via_sdk()
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

    async def _running_via_sdk(self) -> int:
        from e2b import AsyncSandbox, SandboxQuery, SandboxState

        paginator = AsyncSandbox.list(
            query=SandboxQuery(state=[SandboxState.RUNNING]),
            limit=100,
            api_key=self.config.api_key,
            api_url=self.config.api_url.rstrip("/"),
            request_timeout=self.config.timeout_seconds,
        )
        total = 0
        for _ in range(_MAX_PAGES):
            if not paginator.has_next:
                break
            total += len(await paginator.next_items())
        return total

    async def collect(self) -> list[CollectedSample]:
        """One cycle."""
        out = [
            sample("e2b_sandbox_limit", self.config.sandbox_limit),
            sample("e2b_sandbox_hours_quota", self.config.monthly_hours_quota),
        ]
        if self._hours_used is not None:
            out.append(sample("e2b_sandbox_hours_used", self._hours_used()))
        if self.config.api_key:
            out.append(sample("e2b_sandboxes_running", await self.running_sandboxes()))
        return out

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self._client is not None:
            await self._client.aclose()
