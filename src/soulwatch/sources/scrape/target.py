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

A target in steady state (the same lines as last scrape but for the values,
none with a timestamp) takes a shortcut, as Prometheus's scrape cache does:
the values are read with a :class:`~soulwatch.sources.scrape.parse.Layout`,
and appended in one call (:class:`~soulwatch.tsdb.storage.BatchAppender`)
with the outcome of the last scrape for each series text (its labels after
relabelling, or dropped), with no per-sample Python loop. Everything stored
and reported is what the full path would store and report.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from array import array
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import compress

import httpx

from soulwatch import __version__
from soulwatch.clock import Clock
from soulwatch.exceptions import SeriesLimitError, StorageError
from soulwatch.runner import BlockingRunner, run_in_thread
from soulwatch.sources.base import Health, SourceStatus
from soulwatch.sources.scrape.config import DEFAULT_BODY_SIZE_LIMIT, ScrapeConfig
from soulwatch.sources.scrape.parse import (
    ExpositionError,
    Format,
    Layout,
    MetricMetadata,
    decode_body,
    format_of,
    metadata_of,
    parse_series,
    samples,
)
from soulwatch.sources.scrape.relabel import Relabeler
from soulwatch.tsdb.model import METRIC_NAME, STALE_NAN, Labels
from soulwatch.tsdb.storage import Appender, BatchAppender, RefAppender, Storage
from soulwatch.tsdb.writer import append_quietly, open_appender

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
    samples_rejected: int = 0


class _ScrapeFailure(Exception):
    """A scrape failed; the message is what the status shows."""


class _BodyFailure(Exception):
    """The body failed the scrape; ``counts`` is what was counted before (Prometheus reports it)."""

    def __init__(self, message: str, counts: _Counts) -> None:
        super().__init__(message)
        self.counts = counts


class _Entry:
    """One series of the target: its stored labels and what the last scrapes saw of it."""

    __slots__ = ("explicit", "labels", "last_ts", "ref", "seen")

    def __init__(self, labels: Labels | None) -> None:
        self.labels = labels  # None: dropped by metric_relabel_configs
        self.seen = -1  # the last successful scrape that exposed it (none yet)
        self.last_ts: int | None = None  # its last own timestamp (honor_timestamps)
        self.explicit = False  # exposed with its own timestamp: no staleness markers
        self.ref = 0  # the storage's series reference (RefAppender), 0 when unknown


@dataclass
class _Counts:
    scraped: int = 0
    post_relabel: int = 0
    series_added: int = 0


class _Steady:
    """The last scrape's outcome, for a next scrape with the same lines but for the values.

    While it is in use, the entries' ``seen`` and ``ref`` are not updated per
    scrape: ``scrape`` and ``refs`` hold them, and :meth:`ScrapeTarget._settle`
    writes them back before anything else reads the entries.
    """

    __slots__ = ("entries", "first", "keep", "kept", "labels", "layout", "refs", "scrape")

    def __init__(self, layout: Layout, entries: list[_Entry], scrape: int) -> None:
        self.layout = layout
        self.entries = entries  # one per sample line, in order
        self.first = scrape  # the scrape it was recorded from
        self.scrape = scrape  # the last scrape that stored through it
        # the entries metric_relabel_configs keep: distinct, so one sample per series
        self.kept = [e for e in entries if e.labels is not None]
        self.keep: list[bool] | None = None
        if len(self.kept) != len(entries):
            self.keep = [e.labels is not None for e in entries]
        self.labels = [e.labels for e in self.kept if e.labels is not None]
        self.refs = [e.ref for e in self.kept]


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
        runner: BlockingRunner = run_in_thread,
    ) -> None:
        self.config = config
        self.url = url
        self.labels = labels
        self._storage = storage
        self._client = client
        self._clock = clock
        self._lock = write_lock or threading.Lock()
        # Parsing and appending a body is CPU work: off the event loop.
        self._run = runner
        self._relabel = Relabeler(config.metric_relabel_configs)
        self._target_pairs = [(n, v) for n, v in labels if n != METRIC_NAME]
        self._target_names = {n for n, _ in self._target_pairs}
        self._body_limit = config.body_size_limit or DEFAULT_BODY_SIZE_LIMIT
        fallback = config.fallback_scrape_protocol or "PrometheusText0.0.4"
        self._fallback_format = (
            Format.OPENMETRICS if fallback.startswith("OpenMetrics") else Format.TEXT
        )
        self._track_explicit = config.track_timestamps_staleness
        self._headers = {
            "Accept": config.accept,
            "Accept-Encoding": "gzip" if config.enable_compression else "identity",
            "User-Agent": f"soulwatch/{__version__}",
            "X-Prometheus-Scrape-Timeout-Seconds": f"{config.timeout:g}",
            **(headers or {}),
        }
        # series text -> its entry (labels None: dropped by relabeling); validated texts only.
        # Per-sample bookkeeping works on entries, so no label set is hashed per sample.
        self._cache: dict[str, _Entry] = {}
        self._last_count = 0
        self._by_labels: dict[Labels, _Entry] = {}
        self._scrape = 1  # the number the next scrape will use
        self._prev: list[_Entry] = []  # series of the last scrape that get staleness markers
        self._report_labels = {name: labels.with_(__name__=name) for name in REPORT_METRICS}
        self._status = TargetStatus(url=url, labels=labels.to_dict())
        self._last_t_ms: int | None = None
        self._metadata: dict[str, list[str]] = {}
        self._steady: _Steady | None = None
        self._last_entries: list[_Entry] = []  # of the last full-path scrape, while not steady
        # record a layout from any good scrape, until one goes unused (see _append_text)
        self._eager = True

    @property
    def key(self) -> str:
        """``job/instance|url``: the target's identity (it seeds its offset in the interval)."""
        return f"{self.labels.get('job')}/{self.labels.get('instance')}|{self.url}"

    @property
    def interval(self) -> float:
        """Seconds between scrapes."""
        return self.config.interval

    @property
    def metadata(self) -> Mapping[str, MetricMetadata]:
        """``# TYPE``/``# HELP``/``# UNIT`` of the metric families of the last good scrape."""
        return metadata_of(self._metadata)

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
        await self._run(self._store, t_ms, start, body, fmt, error)

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
            return b"".join(chunks), format_of(
                resp.headers.get("content-type"), self._fallback_format
            )

    def _store(self, t_ms: int, start: float, body: bytes | None, fmt: Format, error: str) -> None:
        counts = _Counts()
        with self._lock:
            app = open_appender(self._storage, self.key)
            if body is not None and not error:
                try:
                    counts = self._append_body(app, body, fmt, t_ms)
                except _BodyFailure as exc:
                    app.rollback()
                    error = str(exc)
                    counts = exc.counts
            if error:
                self._settle()
                for entry in self._prev:
                    if entry.labels is not None:
                        append_quietly(app, entry.labels, t_ms, STALE_NAN)
                self._prev = []
            duration = self._clock.monotonic() - start
            report = open_appender(self._storage, self.key)
            for name, value in (
                ("up", 0.0 if error else 1.0),
                ("scrape_duration_seconds", duration),
                ("scrape_samples_scraped", float(counts.scraped)),
                ("scrape_samples_post_metric_relabeling", float(counts.post_relabel)),
                ("scrape_series_added", float(counts.series_added)),
            ):
                append_quietly(report, self._report_labels[name], t_ms, value)
            # the report first: a series limit never crowds out the target's own `up`
            for appender in (report, app):
                # A WAL that cannot be written (a full disk) leaves the samples in
                # memory, where rules still see them; the store's health says so.
                with contextlib.suppress(StorageError):
                    appender.commit()
            # a storage may refuse samples only at commit (another writer came first)
            self._status.samples_rejected += len(getattr(app, "rejected", ()) or ())
        self._last_t_ms = t_ms
        status = self._status
        status.health = Health.DOWN if error else Health.UP
        status.last_error = error
        status.last_run = t_ms / 1000
        status.duration = duration
        status.runs += 1
        status.samples_scraped = counts.scraped

    def _append_body(self, app: Appender, body: bytes, fmt: Format, t_ms: int) -> _Counts:
        text: str | None = None
        with contextlib.suppress(ExpositionError):  # the full path reports it
            text = decode_body(body)
        steady = self._steady
        sample_limit = self.config.sample_limit
        if (
            text is not None
            and steady is not None
            and steady.scrape == self._scrape - 1
            and steady.layout.fmt is fmt
            and len(self._cache) <= 2 * self._last_count + 1024
            and not (sample_limit and len(steady.kept) > sample_limit)
        ):
            values = steady.layout.values(text)
            if values is not None:
                return self._append_steady(app, steady, values, t_ms)
        self._settle()
        return self._append_text(app, body, text, fmt, t_ms)

    def _append_steady(
        self, app: Appender, steady: _Steady, values: array[float], t_ms: int
    ) -> _Counts:
        # Only what the full path would do for a scrape with the last one's lines:
        # no new series, no duplicates, no timestamps, so no staleness markers.
        scrape = self._scrape
        self._scrape = scrape + 1
        if steady.keep is not None:
            values = array("d", compress(values, steady.keep))
        if isinstance(app, BatchAppender):
            steady.refs = app.append_batch(steady.refs, steady.labels, t_ms, values)
        else:
            status = self._status
            for labels, value in zip(steady.labels, values, strict=True):
                try:
                    app.append(labels, t_ms, value)
                except SeriesLimitError:
                    status.series_rejected += 1
                except StorageError:
                    status.samples_rejected += 1
        steady.scrape = scrape
        return _Counts(len(steady.entries), len(steady.kept), 0)

    def _settle(self) -> None:
        """Write the steady state's bookkeeping back to the entries and leave it."""
        steady = self._steady
        if steady is None:
            return
        self._steady = None
        # a layout that served no scrape: wait for the target to settle before the next
        self._eager = steady.scrape != steady.first
        for entry in steady.entries:
            entry.seen = steady.scrape
        for entry, ref in zip(steady.kept, steady.refs, strict=True):
            entry.ref = ref

    def _append_text(
        self, app: Appender, body: bytes, text: str | None, fmt: Format, t_ms: int
    ) -> _Counts:
        append = app.append
        # The storage's series references spare it a label-set lookup per sample.
        append_ref = app.append_ref if isinstance(app, RefAppender) else None
        scrape = self._scrape
        if len(self._cache) > 2 * self._last_count + 1024:
            self._forget(scrape - 1)
        cache = self._cache
        honor_ts = self.config.honor_timestamps
        track_explicit = self._track_explicit
        sample_limit = self.config.sample_limit
        series_limit = self.config.series_limit
        cur: list[_Entry] = []
        add_cur = cur.append
        scraped = post_relabel = series_added = 0
        over_limit = False
        status = self._status
        # a failed scrape still uses up its number, so marks it left on entries are not
        # mistaken for this scrape's by the next one
        self._scrape = scrape + 1
        new_last_ts: list[tuple[_Entry, int]] = []  # kept only if the scrape succeeds
        # what the steady state needs: each sample line's series text and entry
        # each sample line's entry, to see whether the target has settled
        entries: list[_Entry] = []
        add_entry = entries.append
        stamped = False
        dropped_before = status.duplicates_dropped + status.series_rejected
        try:
            if text is None:
                text = decode_body(body)  # raises the error, naming the line
            metadata: dict[str, list[str]] = {}
            for key, value, ts, lineno in samples(text, fmt, cache, metadata):
                scraped += 1
                entry = cache.get(key)
                if entry is None:
                    entry = cache[key] = self._entry_for(key, lineno)
                add_entry(entry)
                if ts is not None:
                    stamped = True
                labels = entry.labels
                if labels is None:  # dropped by metric_relabel_configs
                    entry.seen = scrape
                    continue
                post_relabel += 1
                if sample_limit and post_relabel > sample_limit:
                    over_limit = True
                if over_limit:
                    continue
                if entry.seen == scrape:
                    status.duplicates_dropped += 1
                    continue
                if entry.seen != scrape - 1:
                    if series_limit and len(cur) >= series_limit:
                        status.series_rejected += 1
                        continue
                    series_added += 1
                entry.seen = scrape
                add_cur(entry)
                if ts is not None and honor_ts:
                    # series with their own timestamps get no staleness markers (as in
                    # Prometheus), unless track_timestamps_staleness asks for them
                    entry.explicit = not track_explicit
                    if entry.last_ts is not None and ts <= entry.last_ts:
                        status.out_of_order_dropped += 1
                        continue
                    new_last_ts.append((entry, ts))
                    t = ts
                else:
                    entry.explicit = False
                    t = t_ms
                try:
                    if append_ref is None:
                        append(labels, t, value)
                    else:
                        entry.ref = append_ref(entry.ref, labels, t, value)
                except SeriesLimitError:
                    status.series_rejected += 1
                except StorageError:
                    # out of order, or a different value at a stored timestamp: dropped, as in
                    # Prometheus, and the rest of the scrape goes on
                    status.samples_rejected += 1
        except (ExpositionError, _ScrapeFailure) as exc:
            raise _BodyFailure(str(exc), _Counts(scraped, post_relabel, series_added)) from None
        if over_limit:
            # like Prometheus: the whole exposition is counted, nothing of it is kept
            raise _BodyFailure(
                f"sample limit exceeded (limit {sample_limit})",
                _Counts(scraped, post_relabel, series_added),
            )
        for entry, ts in new_last_ts:
            entry.last_ts = ts
        for gone in self._prev:
            if gone.seen != scrape and gone.labels is not None:
                append_quietly(app, gone.labels, t_ms, STALE_NAN)
        self._prev = [e for e in cur if not e.explicit]
        self._last_count = scraped
        self._metadata = metadata
        # Each series once, none with its own timestamp: the next scrape may be
        # steady. Once a layout went unused, the next is recorded only when the
        # target has settled (the same series in the same order as the last
        # full-path scrape), so one whose series change every scrape does not
        # pay for a layout every time.
        settled = entries == self._last_entries
        self._last_entries = entries
        if (
            (settled or self._eager)
            and not stamped
            and status.duplicates_dropped + status.series_rejected == dropped_before
        ):
            layout = Layout.of(text, fmt, cache)
            if layout is not None:
                self._steady = _Steady(layout, entries, scrape)
                self._last_entries = []
        return _Counts(scraped, post_relabel, series_added)

    def _forget(self, oldest: int) -> None:
        """Drop cache entries of series not seen since scrape ``oldest`` (bounds memory)."""
        self._cache = {k: e for k, e in self._cache.items() if e.seen >= oldest}
        self._by_labels = {k: e for k, e in self._by_labels.items() if e.seen >= oldest}

    def _entry_for(self, key: str, lineno: int) -> _Entry:
        """The entry of a new series text; texts meaning the same series share one."""
        labels = self._labels_for(key, lineno)
        if labels is None:
            return _Entry(None)
        entry = self._by_labels.get(labels)
        if entry is None:
            entry = self._by_labels[labels] = _Entry(labels)
        return entry

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
            app = open_appender(self._storage, self.key)
            for labels in [e.labels for e in self._prev if e.labels is not None] + list(
                self._report_labels.values()
            ):
                append_quietly(app, labels, t_ms, STALE_NAN)
            app.commit()
        self._prev = []
