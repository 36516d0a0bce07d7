"""The Vercel collector: this month's usage per service against the plan's limits.

Vercel publishes usage as FOCUS 1.3 billing records: ``GET /v1/billing/charges``
with ``from``/``to`` (ISO 8601, UTC, ``to`` exclusive) and an optional
``teamId``, answered as JSON lines, one charge per service and day. The
collector sums ``ConsumedQuantity`` and ``BilledCost`` per ``ServiceName``
from the first of the month (UTC) to now, and publishes each configured
limit beside it, so ``vercel_usage / vercel_usage_limit`` is the share used.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from soulwatch.clock import Clock, SystemClock
from soulwatch.exceptions import MissingExtraError, SoulwatchError
from soulwatch.sources.collectors.base import CollectedSample, sample
from soulwatch.sources.collectors.config import VercelCollectorConfig

_MAX_RECORDS = 100_000  # a year of daily charges for every service, many times over


class VercelError(SoulwatchError):
    """Vercel's API answered with an error, or with records that are not FOCUS JSON lines."""


class VercelCollector:
    """Collects ``vercel_*`` metrics."""

    name = "vercel"

    def __init__(
        self, config: VercelCollectorConfig, *, clock: Clock | None = None, transport: Any = None
    ) -> None:
        try:
            import httpx
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise MissingExtraError("httpx", "http") from exc
        self.config = config
        self._clock = clock or SystemClock()
        self._client = httpx.AsyncClient(
            base_url=config.api_url.rstrip("/"),
            headers={"Authorization": f"Bearer {config.token}", "Accept-Encoding": "gzip"},
            timeout=config.timeout_seconds,
            transport=transport,
        )

    def _period(self) -> tuple[str, str]:
        now = datetime.fromtimestamp(self._clock.time(), UTC)
        start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        end = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H:%M:%SZ"), end.strftime("%Y-%m-%dT%H:%M:%SZ")

    async def charges(self) -> list[dict[str, Any]]:
        """This month's FOCUS records."""
        start, end = self._period()
        params = {"from": start, "to": end}
        if self.config.team_id:
            params["teamId"] = self.config.team_id
        response = await self._client.get("/v1/billing/charges", params=params)
        if response.status_code != 200:
            # Vercel's errors are JSON ({"error": {"code", "message"}}); never echo the token.
            raise VercelError(f"vercel: HTTP {response.status_code}: {response.text[:200]}")
        records: list[dict[str, Any]] = []
        for number, line in enumerate(response.text.splitlines(), 1):
            if not line.strip():
                continue
            if len(records) >= _MAX_RECORDS:
                raise VercelError(f"vercel: more than {_MAX_RECORDS} billing records this month")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VercelError(f"vercel: line {number} is not JSON: {exc.msg}") from None
            if not isinstance(record, dict):
                raise VercelError(f"vercel: line {number} is not a JSON object")
            records.append(record)
        return records

    async def collect(self) -> list[CollectedSample]:
        """One cycle."""
        usage: dict[str, float] = {}
        cost: dict[tuple[str, str], float] = {}
        for record in await self.charges():
            service = str(record.get("ServiceName") or "unknown")
            quantity = _number(record.get("ConsumedQuantity"))
            usage[service] = usage.get(service, 0.0) + quantity
            key = (service, str(record.get("BillingCurrency") or "USD"))
            cost[key] = cost.get(key, 0.0) + _number(record.get("BilledCost"))
        out = [sample("vercel_usage", usage.get(s, 0.0), service=s) for s in self.config.limits]
        out += [sample("vercel_usage_limit", v, service=s) for s, v in self.config.limits.items()]
        out += [
            sample("vercel_billed_cost", v, service=s, currency=c) for (s, c), v in cost.items()
        ]
        return out

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def _number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0
