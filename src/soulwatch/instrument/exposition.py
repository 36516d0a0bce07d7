"""``/metrics``: the Prometheus text format, or OpenMetrics when the scraper asks for it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from soulwatch.instrument._types import Receive, Scope, Send
from soulwatch.instrument.multiprocess import collect_registry, compact


class MetricsEndpoint:
    """An ASGI app serving ``registry`` (default: prometheus_client's) for scraping.

    With ``multiprocess_dir`` set it serves the sum over all workers' files
    instead, folding dead workers' files into archives first so scrapes stay
    fast. ``before_scrape`` hooks run first (they flush busy time and refresh
    the worker's process metrics).
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: Path | None = None,
        before_scrape: list[Callable[[], None]] | None = None,
    ) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.multiprocess_dir = multiprocess_dir
        self.before_scrape = list(before_scrape or [])

    def render(self, accept: str | None) -> tuple[bytes, str]:
        """The exposition body and its content type for an ``Accept`` header value."""
        for hook in self.before_scrape:
            hook()
        registry = self.registry
        if self.multiprocess_dir is not None:
            compact(self.multiprocess_dir)
            registry = collect_registry(self.multiprocess_dir)
        encoder, content_type = choose_encoder(accept or "")
        return encoder(registry), content_type

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        accept = None
        for name, value in scope.get("headers", ()):
            if name == b"accept":
                accept = value.decode("latin-1")
                break
        body, content_type = self.render(accept)
        head = scope.get("method") == "HEAD"
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", content_type.encode("latin-1")),
                    (b"content-length", str(len(body)).encode("ascii")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else body})
