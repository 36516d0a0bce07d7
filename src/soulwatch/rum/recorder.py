"""The RUM aggregates: counters and histograms by site and page, written as series.

The intake calls :meth:`RumRecorder.record` for each accepted batch; the
monitor runs the recorder as a collector (``job="rum"``), so the aggregates
land in storage on the collectors' schedule as ordinary ``rum_*`` series.
Label values are bounded: pages and ``/api/*`` routes fold into the site's
templates (or ``other``), status codes are three digits (``0`` for a network
error), and at most ``max_tracked_sessions`` sessions are remembered.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from enum import Enum

from soulwatch.rum.config import RumConfig, RumSiteConfig
from soulwatch.rum.events import ApiCall, Batch, PageError, PageView, Vital
from soulwatch.rum.paths import RouteFolder
from soulwatch.sources.collectors.base import CollectedSample, Histogram, sample

# Bounds chosen around web.dev's "good" / "poor" thresholds (LCP 2.5/4 s,
# INP 0.2/0.5 s, FCP 1.8/3 s, TTFB 0.8/1.8 s, CLS 0.1/0.25), so a rule can ask
# for the share under a threshold exactly.
_SECONDS_BUCKETS = (0.1, 0.25, 0.5, 0.8, 1.0, 1.5, 1.8, 2.0, 2.5, 3.0, 4.0, 5.0, 7.5, 10.0)
_INP_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
_CLS_BUCKETS = (0.01, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0)
_API_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0)

_VITAL_METRICS = {
    "LCP": ("rum_lcp_seconds", _SECONDS_BUCKETS),
    "INP": ("rum_inp_seconds", _INP_BUCKETS),
    "CLS": ("rum_cls", _CLS_BUCKETS),
    "FCP": ("rum_fcp_seconds", _SECONDS_BUCKETS),
    "TTFB": ("rum_ttfb_seconds", _SECONDS_BUCKETS),
}


class Rejection(Enum):
    """Why a batch was not counted (the ``reason`` of ``rum_rejected_batches_total``)."""

    FORBIDDEN = "forbidden"
    MALFORMED = "malformed"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    BOT = "bot"


class _Site:
    def __init__(self, config: RumSiteConfig) -> None:
        self.name = config.name
        self.folder = RouteFolder(config.routes)
        self.page_views: dict[str, int] = {}
        self.errors: dict[tuple[str, str], int] = {}
        self.histograms: dict[tuple[str, ...], Histogram] = {}

    def histogram(self, name: str, buckets: tuple[float, ...], **labels: str) -> Histogram:
        key = (name, *labels.values())
        found = self.histograms.get(key)
        if found is None:
            found = self.histograms[key] = Histogram(name, buckets, site=self.name, **labels)
        return found


class RumRecorder:
    """Aggregates of every site; a :class:`~soulwatch.sources.collectors.base.Collector`."""

    name = "rum"

    def __init__(self, config: RumConfig, now: Callable[[], float]) -> None:
        self._config = config
        self._now = now
        self._sites = {site.key: _Site(site) for site in config.sites}
        self._sessions: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._rejected: dict[tuple[str, Rejection], int] = {}

    def site_name(self, key: str) -> str | None:
        """The name of the site with public key ``key``, or None."""
        site = self._sites.get(key)
        return site.name if site else None

    def reject(self, site: str, reason: Rejection) -> None:
        """Count a refused batch (``site`` is ``unknown`` when the key was not known)."""
        key = (site, reason)
        self._rejected[key] = self._rejected.get(key, 0) + 1

    def record(self, batch: Batch) -> None:
        """Count the events of an accepted batch (its key must be a known site's)."""
        site = self._sites[batch.key]
        self._touch(site.name, batch.session)
        for event in batch.events:
            page = site.folder.fold(event.page)
            if isinstance(event, PageView):
                site.page_views[page] = site.page_views.get(page, 0) + 1
            elif isinstance(event, Vital):
                name, buckets = _VITAL_METRICS[event.name]
                site.histogram(name, buckets, page=page).observe(event.value)
            elif isinstance(event, PageError):
                key = (page, event.kind)
                site.errors[key] = site.errors.get(key, 0) + 1
            elif isinstance(event, ApiCall):
                route = site.folder.fold(event.route)
                code = str(event.status)
                site.histogram(
                    "rum_api_request_duration_seconds", _API_BUCKETS, route=route, code=code
                ).observe(event.duration)

    def _touch(self, site: str, session: str) -> None:
        key = (site, session)
        self._sessions.pop(key, None)
        self._sessions[key] = self._now()
        while len(self._sessions) > self._config.max_tracked_sessions:
            self._sessions.popitem(last=False)

    def active_sessions(self) -> dict[str, int]:
        """Distinct sessions per site seen within ``active_window``."""
        cutoff = self._now() - self._config.active_window
        while self._sessions:
            oldest = next(iter(self._sessions.items()))
            if oldest[1] >= cutoff:
                break
            self._sessions.popitem(last=False)
        counts = {site.name: 0 for site in self._sites.values()}
        for site, _session in self._sessions:
            counts[site] += 1
        return counts

    async def collect(self) -> list[CollectedSample]:
        """Every ``rum_*`` series with its current value."""
        return self.samples()

    async def aclose(self) -> None:
        """Nothing to close: the aggregates live in memory."""

    def samples(self) -> list[CollectedSample]:
        """Every ``rum_*`` series with its current value (synchronously)."""
        out: list[CollectedSample] = []
        for site in self._sites.values():
            for page, n in site.page_views.items():
                out.append(sample("rum_page_views_total", n, site=site.name, page=page))
            for (page, kind), n in site.errors.items():
                out.append(sample("rum_errors_total", n, site=site.name, page=page, kind=kind))
            for histogram in site.histograms.values():
                out.extend(histogram.samples())
        for name, n in self.active_sessions().items():
            out.append(sample("rum_active_sessions", n, site=name))
        for (site_name, reason), n in self._rejected.items():
            out.append(sample("rum_rejected_batches_total", n, site=site_name, reason=reason.value))
        return out
