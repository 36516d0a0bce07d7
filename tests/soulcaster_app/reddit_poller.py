"""The poll loop of Soulcaster's ``backend/reddit_poller.py``, with the documented heartbeat.

Fetching from Reddit is the network edge: ``fetch_reddit_posts`` is injected.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from soulwatch.instrument import Heartbeat

DEFAULT_POLL_INTERVAL = 300  # seconds

# -- soulwatch adoption: the heartbeat lines docs/soulcaster.md adds. --
heartbeat = Heartbeat(url) if (url := os.getenv("POLLER_HEARTBEAT_URL")) else None
# -- end of the adoption lines. --


class RedditPoller:
    """Polls subreddits and ingests what it finds."""

    def __init__(
        self,
        fetch: Callable[[Iterable[str]], list[dict[str, Any]]],
        ingest_fn: Callable[[dict[str, Any]], None],
        poll_interval: int = DEFAULT_POLL_INTERVAL,
        sleep_fn: Callable[[float], None] = time.sleep,
    ) -> None:
        self.fetch_reddit_posts = fetch
        self.ingest_fn = ingest_fn
        self.poll_interval = poll_interval
        self.sleep = sleep_fn

    def poll_once(self, subreddits: Iterable[str]) -> None:
        """Fetch posts once and ingest them."""
        posts = self.fetch_reddit_posts(subreddits)
        if not posts:
            return
        for post in posts:
            self.ingest_fn(post)

    def run_forever(self, subreddits: Iterable[str] | None = None) -> None:
        """Start continuous polling."""
        while True:
            active_subreddits = list(subreddits) if subreddits is not None else ["claudeai"]
            with heartbeat.run() if heartbeat else contextlib.nullcontext():
                self.poll_once(active_subreddits)
            self.sleep(self.poll_interval)
