"""Outbound rate limits read from API responses (the plan's "Reddit API rate limit remaining").

Responses carrying ``X-Ratelimit-Remaining``/``-Used``/``-Reset`` update
``outbound_ratelimit_remaining{api}``, ``outbound_ratelimit_used{api}`` and
``outbound_ratelimit_reset_seconds{api}`` (seconds until the window resets;
an epoch timestamp, as GitHub sends, is converted). Hooks for httpx (sync and
async clients) and an adapter for requests; neither library is imported
unless you use its hook.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from soulwatch.clock import Clock, SystemClock
from soulwatch.instrument._extras import require
from soulwatch.instrument._state import shared

_EPOCH_THRESHOLD = 1_000_000_000.0  # larger "reset" values are Unix timestamps, not durations


class _RateLimitMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, ("api",), registry=registry, multiprocess_mode="mostrecent")

        self.remaining = gauge(
            "outbound_ratelimit_remaining", "Requests left in the API's rate-limit window."
        )
        self.used = gauge(
            "outbound_ratelimit_used", "Requests used in the API's rate-limit window."
        )
        self.reset = gauge(
            "outbound_ratelimit_reset_seconds", "Seconds until the API's rate-limit window resets."
        )


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


class RateLimitRecorder:
    """Updates the ``outbound_ratelimit_*{api}`` gauges from response headers."""

    def __init__(
        self, api: str, *, registry: CollectorRegistry | None = None, clock: Clock | None = None
    ) -> None:
        self.api = api
        self.clock = clock or SystemClock()
        registry = REGISTRY if registry is None else registry
        self._metrics = shared(registry, "ratelimit", lambda: _RateLimitMetrics(registry))
        self._lock = threading.Lock()

    def record(self, headers: Mapping[str, str]) -> bool:
        """Read the rate-limit headers (case-insensitive mapping); True if any was present."""
        remaining = _number(headers.get("x-ratelimit-remaining"))
        used = _number(headers.get("x-ratelimit-used"))
        reset = _number(headers.get("x-ratelimit-reset"))
        with self._lock:
            if remaining is not None:
                self._metrics.remaining.labels(self.api).set(remaining)
            if used is not None:
                self._metrics.used.labels(self.api).set(used)
            if reset is not None:
                if reset > _EPOCH_THRESHOLD:
                    reset = max(0.0, reset - self.clock.time())
                self._metrics.reset.labels(self.api).set(reset)
        return remaining is not None or used is not None or reset is not None

    def httpx_hook(self) -> Callable[[Any], None]:
        """An httpx ``event_hooks={"response": [...]}`` hook for ``httpx.Client``."""

        def hook(response: Any) -> None:
            self.record(response.headers)

        return hook

    def httpx_async_hook(self) -> Callable[[Any], Awaitable[None]]:
        """The same hook for ``httpx.AsyncClient`` (whose hooks must be coroutines)."""

        async def hook(response: Any) -> None:
            self.record(response.headers)

        return hook

    def requests_adapter(self, **adapter_kwargs: Any) -> Any:
        """A ``requests`` transport adapter recording every response; needs ``requests``.

        ``session.mount("https://oauth.reddit.com", recorder.requests_adapter())``
        """
        adapters = require("requests.adapters", "requests")
        recorder = self

        class RateLimitAdapter(adapters.HTTPAdapter):  # type: ignore[name-defined,misc]
            """An HTTPAdapter that records rate-limit headers of every response."""

            def build_response(self, req: Any, resp: Any) -> Any:
                response = super().build_response(req, resp)
                recorder.record(response.headers)
                return response

        return RateLimitAdapter(**adapter_kwargs)
