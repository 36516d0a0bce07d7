"""One scrape target: fetch, parse, relabel, append, staleness, and the report series.

Behaviour follows Prometheus's scrape loop:

* samples are stamped with the time the scrape started (or their own
  timestamp when ``honor_timestamps`` is set and the exposition gives one);
* every scrape writes ``up``, ``scrape_duration_seconds``,
  ``scrape_samples_scraped``, ``scrape_samples_post_metric_relabeling`` and
  ``scrape_series_added`` with the target's labels;
* a series the target stops exposing gets a staleness marker at the next
  scrape, and a failed scrape (timeout, non-2xx, malformed body, body or
  sample limit exceeded) writes ``up 0`` and marks every series of the
  previous scrape stale; nothing of a failed scrape is stored;
* a repeated series in one exposition keeps its first sample; a sample whose
  own timestamp is not newer than the one stored before is dropped (both
  counted on the status).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

from soulwatch import __version__
from soulwatch.clock import Clock
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.sources.scrape.config import DEFAULT_BODY_SIZE_LIMIT, ScrapeConfig
from soulwatch.sources.scrape.parse import (
    ACCEPT_HEADER,
    ExpositionError,
    Format,
    decode_body,
    format_of,
    parse_series,
    samples,
)
from soulwatch.sources.scrape.relabel import Relabeler
from soulwatch.tsdb.model import METRIC_NAME, STALE_NAN, Labels
from soulwatch.tsdb.storage import Appender, Storage

_MISS = object()
REPORT_METRICS = (
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
)


@dataclass
class TargetStatus(SourceStatus):
    """A scrape target's status: :class:`SourceStatus` plus what Prometheus's targets page shows."""

    url: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    samples_scraped: int = 0
    duplicates_dropped: int = 0
    out_of_order_dropped: int = 0
    series_rejected: int = 0


class _ScrapeFailure(Exception):
    """A scrape failed; the message is what the status shows."""


@dataclass
class _Counts:
    scraped: int = 0
    post_relabel: int = 0
    series_added: int = 0


class ScrapeTarget:
    """A :class:`~soulwatch.sources.base.Source` scraping one URL into ``storage``.

    ``labels`` are the target's labels (``job``, ``instance`` and any static
    labels); ``write_lock`` serialises storage writes of many targets, which
    run in worker threads so a large scrape does not stall the event loop.
    """

    def __init__(
        self,
        config: ScrapeConfig,
        url: str,
        labels: Labels,
        *,
        storage: Storage,
        client: httpx.AsyncClient,
        clock: Clock,
        headers: Mapping[str, str] | None = None,
        write_lock: threading.Lock | None = None,
        offload: bool = True,
    ) -> None:
        self.config = config
        self.url = url
        self.labels = labels
        self._storage = storage
        self._client = client
        self._clock = clock
        self._lock = write_lock or threading.Lock()
        self._offload = offload
        self._relabel = Relabeler(config.metric_relabel_configs)
        self._target_pairs = [(n, v) for n, v in labels if n != METRIC_NAME]
        self._target_names = {n for n, _ in self._target_pairs}
        self._body_limit = config.body_size_limit or DEFAULT_BODY_SIZE_LIMIT
        self._headers = {
            "Accept": ACCEPT_HEADER,
            "Accept-Encoding": "gzip",
            "User-Agent": f"soulwatch/{__version__}",
            "X-Prometheus-Scrape-Timeout-Seconds": f"{config.timeout:g}",
            **(headers or {}),
        }
        # series text -> final labels (None: dropped by relabeling); only validated texts
        self._cache: dict[str, Labels | None] = {}
        self._prev: set[Labels] = set()  # series of the last successful scrape, for staleness
        self._prev_all: set[Labels] = set()  # every series of the last scrape, for series_added
        self._last_explicit: dict[Labels, int] = {}
        self._report_labels = {name: labels.with_(__name__=name) for name in REPORT_METRICS}
        self._status = TargetStatus(url=url, labels=labels.to_dict())
        self._last_t_ms: int | None = None

    @property
    def key(self) -> str:
        """``job/instance``: the target's identity (it seeds its offset in the interval)."""
        return f"{self.labels.get('job')}/{self.labels.get('instance')}|{self.url}"

    @property
    def interval(self) -> float:
        """Seconds between scrapes."""
        return self.config.interval

    @property
    def status(self) -> TargetStatus:
        """The outcome of the last scrape."""
        return self._status

    async def run_once(self, t: float) -> None:
        """Scrape once; failures are recorded on :attr:`status`, never raised."""
        start = self._clock.monotonic()
        t_ms = int(self._clock.time() * 1000)
        body: bytes | None = None
        fmt = Format.TEXT
        error = ""
        try:
            async with asyncio.timeout(self.config.timeout):
                body, fmt = await self._fetch()
        except TimeoutError:
            error = f"scrape timed out after {self.config.timeout:g}s"
        except _ScrapeFailure as exc:
            error = str(exc)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if self._offload:
            await asyncio.to_thread(self._store, t_ms, start, body, fmt, error)
        else:
            self._store(t_ms, start, body, fmt, error)

    async def _fetch(self) -> tuple[bytes, Format]:
        limit = self._body_limit
        async with self._client.stream("GET", self.url, headers=self._headers) as resp:
            if not 200 <= resp.status_code < 300:
                raise _ScrapeFailure(
                    f"server returned HTTP status {resp.status_code} {resp.reason_phrase}".rstrip()
                )
            length = resp.headers.get("content-length")
            encoded = resp.headers.get("content-encoding", "identity") != "identity"
            if length and length.isdigit() and int(length) > limit and not encoded:
                raise _ScrapeFailure(f"body size limit exceeded ({length} > {limit} bytes)")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    # stop reading: the connection is closed, the rest is never transferred
                    raise _ScrapeFailure(f"body size limit exceeded (more than {limit} bytes)")
                chunks.append(chunk)
            return b"".join(chunks), format_of(resp.headers.get("content-type"))

    def _store(self, t_ms: int, start: float, body: bytes | None, fmt: Format, error: str) -> None:
        counts = _Counts()
        with self._lock:
            app = self._storage.appender()
            if body is not None and not error:
                try:
                    counts = self._append_body(app, body, fmt, t_ms)
                except (ExpositionError, _ScrapeFailure) as exc:
                    app.rollback()
                    app = self._storage.appender()
                    error = str(exc)
                    counts = _Counts(scraped=counts.scraped)
            if error:
                for labels in self._prev:
                    app.append(labels, t_ms, STALE_NAN)
                self._prev = set()
            duration = self._clock.monotonic() - start
            up = 0.0 if error else 1.0
            for name, value in (
                ("up", up),
                ("scrape_duration_seconds", duration),
                ("scrape_samples_scraped", float(counts.scraped)),
                ("scrape_samples_post_metric_relabeling", float(counts.post_relabel)),
                ("scrape_series_added", float(counts.series_added)),
            ):
                app.append(self._report_labels[name], t_ms, value)
            app.commit()
        self._last_t_ms = t_ms
        status = self._status
        status.health = Health.DOWN if error else Health.UP
        status.last_error = error
        status.last_run = t_ms / 1000
        status.duration = duration
        status.runs += 1
        status.samples_scraped = counts.scraped

    def _append_body(self, app: Appender, body: bytes, fmt: Format, t_ms: int) -> _Counts:
        append = app.append
        text = decode_body(body)
        cache = self._cache
        if len(cache) > 2 * len(self._prev_all) + 1024:
            cache.clear()  # bounded: texts of series long gone are forgotten
        honor_ts = self.config.honor_timestamps
        sample_limit = self.config.sample_limit
        series_limit = self.config.series_limit
        prev_all = self._prev_all
        last_explicit = self._last_explicit
        cur: set[Labels] = set()
        explicit: set[Labels] = set()
        counts = _Counts()
        status = self._status
        for key, value, ts, lineno in samples(text, fmt, cache):
            counts.scraped += 1
            labels = cache.get(key, _MISS)
            if labels is _MISS:
                labels = cache[key] = self._labels_for(key, lineno)
            if labels is None:
                continue
            assert isinstance(labels, Labels)
            counts.post_relabel += 1
            if sample_limit and counts.post_relabel > sample_limit:
                raise _ScrapeFailure(f"sample limit exceeded (limit {sample_limit})")
            if labels in cur:
                status.duplicates_dropped += 1
                continue
            if labels not in prev_all:
                if series_limit and len(cur) >= series_limit:
                    status.series_rejected += 1
                    continue
                counts.series_added += 1
            cur.add(labels)
            if ts is not None and honor_ts:
                last = last_explicit.get(labels)
                if last is not None and ts <= last:
                    status.out_of_order_dropped += 1
                    continue
                last_explicit[labels] = ts
                explicit.add(labels)
                append(labels, ts, value)
            else:
                append(labels, t_ms, value)
        tracked = cur - explicit if explicit else cur
        for gone in self._prev - tracked:
            append(gone, t_ms, STALE_NAN)
        self._prev = tracked
        self._prev_all = cur
        if explicit and len(last_explicit) > 2 * len(explicit) + 1024:
            self._last_explicit = {k: v for k, v in last_explicit.items() if k in explicit}
        return counts

    def _labels_for(self, key: str, lineno: int) -> Labels | None:
        """The stored labels of a series text: target labels merged, relabeled, limits checked."""
        series = parse_series(key, lineno)
        scraped = dict(series.labels)
        scraped[METRIC_NAME] = series.name
        if self.config.honor_labels:
            for name, value in self._target_pairs:
                if scraped.get(name, "") == "":
                    scraped[name] = value
        else:
            for name, value in self._target_pairs:
                if name in scraped:
                    # a conflict: the scraped label is kept as exported_<name>
                    old = scraped.pop(name)
                    exported = "exported_" + name
                    while exported in scraped:
                        exported = "exported_" + exported
                    scraped[exported] = old
                scraped[name] = value
        if self._relabel:
            relabeled = self._relabel.process(scraped)
            if relabeled is None:
                return None
            scraped = relabeled
        self._check_limits(scraped, lineno)
        return Labels(scraped.items())

    def _check_limits(self, labels: dict[str, str], lineno: int) -> None:
        cfg = self.config
        present = {n: v for n, v in labels.items() if v != ""}
        if cfg.label_limit and len(present) > cfg.label_limit:
            raise _ScrapeFailure(
                f"label_limit exceeded at line {lineno}: {len(present)} > {cfg.label_limit}"
            )
        for name, value in present.items():
            if cfg.label_name_length_limit and len(name) > cfg.label_name_length_limit:
                raise _ScrapeFailure(f"label_name_length_limit exceeded at line {lineno}: {name!r}")
            if cfg.label_value_length_limit and len(value) > cfg.label_value_length_limit:
                raise _ScrapeFailure(
                    f"label_value_length_limit exceeded at line {lineno} (label {name!r})"
                )

    async def close(self) -> None:
        """Mark every series of the target stale, as Prometheus does when a target goes away."""
        if self._last_t_ms is None:
            return
        t_ms = max(int(self._clock.time() * 1000), self._last_t_ms + 1)
        with self._lock:
            app = self._storage.appender()
            for labels in self._prev:
                app.append(labels, t_ms, STALE_NAN)
            for labels in self._report_labels.values():
                app.append(labels, t_ms, STALE_NAN)
            app.commit()
        self._prev = set()
