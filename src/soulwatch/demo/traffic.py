"""Steady traffic against the demo backend, so its golden signals have something to show."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable

import httpx

_REQUESTS = [
    ("POST", "/ingest/reddit"),
    ("POST", "/ingest/sentry"),
    ("GET", "/cluster-jobs/demo"),
    ("GET", "/jobs"),
    ("GET", "/cluster-jobs/other"),
    ("GET", "/no-such-page"),
]


class Traffic:
    """Sends ``rate`` requests per real second with up to ``concurrency`` in flight."""

    def __init__(self, base_url: str, *, rate: float = 20.0, concurrency: int = 16) -> None:
        self._base_url = base_url
        self._period = 1.0 / rate
        self._slots = asyncio.Semaphore(concurrency)
        self.sent = 0
        self.failed = 0

    async def run(self, stop: Callable[[], bool]) -> None:
        """Send requests until ``stop()``; connection errors (backend down) are counted."""
        async with httpx.AsyncClient(base_url=self._base_url, timeout=10.0) as client:
            pending: set[asyncio.Task[None]] = set()
            for method, path in itertools.cycle(_REQUESTS):
                if stop():
                    break
                await self._slots.acquire()
                task = asyncio.create_task(self._one(client, method, path))
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(self._period)
            await asyncio.gather(*pending, return_exceptions=True)

    async def _one(self, client: httpx.AsyncClient, method: str, path: str) -> None:
        try:
            await client.request(method, path)
            self.sent += 1
        except httpx.HTTPError:
            self.failed += 1
        finally:
            self._slots.release()
