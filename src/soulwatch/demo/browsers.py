"""The demo dashboard's visitors: beacons shaped exactly as the browser agent sends them.

Each simulated page load posts what ``/rum/v1/agent.js`` would post for it
(a page view, LCP/FCP/TTFB/CLS, the page's ``/api/*`` calls, a React crash
when the crash-loop fault is on) to soulwatch's ``/rum/v1/events``, from the
dashboard's origin, as one of a few dozen tabs.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from typing import Any

import httpx

from soulwatch.demo.faults import Faults

#: The demo site's public key (the one its page's script tag carries).
RUM_KEY = "demo-dashboard-key"
#: Route templates of the demo dashboard, as Soulcaster's dashboard names them.
RUM_ROUTES = [
    "/dashboard",
    "/dashboard/clusters",
    "/dashboard/clusters/[id]",
    "/api/clusters",
    "/api/clusters/[id]",
]
_PAGES = ["/dashboard", "/dashboard/clusters", "/dashboard/clusters/17", "/dashboard/clusters/42"]


class BrowserTraffic:
    """``rate`` page loads per real second until stopped."""

    def __init__(
        self,
        soulwatch_url: str,
        origin: str,
        faults: Faults,
        *,
        rate: float = 4.0,
        rng: random.Random | None = None,
    ) -> None:
        self._url = soulwatch_url.rstrip("/") + "/rum/v1/events"
        self._headers = {"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"}
        self._faults = faults
        self._period = 1.0 / rate
        self._rng = rng or random.Random(11)
        self.sent = 0
        self.failed = 0

    def page_load(self, n: int) -> dict[str, Any]:
        """The batch one tab sends for one page load."""
        rng = self._rng
        page = _PAGES[n % len(_PAGES)]
        lcp = rng.uniform(3100, 3900) if self._faults.slow_pages else rng.uniform(600, 1400)
        api_status = 500 if rng.random() < self._faults.error_rate else 200
        events: list[dict[str, Any]] = [
            {"type": "pageview", "page": page},
            {"type": "vital", "name": "TTFB", "value": rng.uniform(80, 250), "page": page},
            {"type": "vital", "name": "FCP", "value": min(lcp, rng.uniform(400, 900)),
             "page": page},
            {"type": "vital", "name": "LCP", "value": lcp, "page": page},
            {"type": "vital", "name": "CLS", "value": rng.uniform(0, 0.05), "page": page},
            {"type": "api", "route": "/api/clusters", "status": api_status,
             "duration": rng.uniform(40, 160), "page": page},
        ]  # fmt: skip
        if self._faults.crash_loop and n % 2 == 0:
            events.append({"type": "error", "kind": "react", "page": page})
        return {"site": RUM_KEY, "session": f"demo-tab-{n % 40:04d}", "events": events}

    async def run(self, stop: Callable[[], bool]) -> None:
        """Post page loads until ``stop()``; refused or failed posts are counted."""
        async with httpx.AsyncClient(timeout=5.0) as client:
            n = 0
            while not stop():
                body = json.dumps(self.page_load(n))
                try:
                    reply = await client.post(self._url, content=body, headers=self._headers)
                    if reply.status_code == 204:
                        self.sent += 1
                    else:
                        self.failed += 1
                except httpx.HTTPError:
                    self.failed += 1
                n += 1
                await asyncio.sleep(self._period)
