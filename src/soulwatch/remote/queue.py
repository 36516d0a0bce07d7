"""One remote write queue: read the WAL, shard by series, send, retry, save the cursor.

A round reads what the WAL holds past the cursor (at most ``shards x
capacity`` samples), splits it by series over the shards, and each shard
sends its part in requests of at most ``max_samples_per_send`` samples, one
after another, so a series' samples reach the receiver in order. The cursor
is saved once every shard's requests are answered: a receiver outage or a
``kill -9`` sends the unacknowledged round again, nothing is skipped.

Answers, as Prometheus reads them: 2xx is done; 5xx, a transport error and
(with ``retry_on_http_429``) 429 are retried with exponential backoff from
``min_backoff`` to ``max_backoff``, for as long as it takes; any other answer
(a 4xx, a redirect not followed) drops that request's samples, logged and
counted as failed, since sending the same bytes again cannot succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from soulwatch.clock import Clock
from soulwatch.remote.batch import Request, split_round
from soulwatch.remote.config import RemoteWriteConfig
from soulwatch.remote.http import Poster
from soulwatch.remote.metrics import RemoteMetrics
from soulwatch.remote.proto import (
    encode_labels,
    encode_metadata,
    snappy_compress,
)
from soulwatch.remote.wal_watcher import Cursor, CursorFile, RoundState, WalWatcher
from soulwatch.sources.scrape.parse import MetricMetadata
from soulwatch.sources.scrape.relabel import Relabeler
from soulwatch.tsdb.model import Labels

_log = structlog.get_logger("soulwatch.remote")
_T = TypeVar("_T")

#: How often a caught-up queue looks at the WAL again.
POLL_INTERVAL = 0.1


class WalSource(Protocol):
    """What a queue needs from the TSDB: its WAL, a hold on it, and series labels."""

    @property
    def wal_directory(self) -> Path:
        """Where the WAL segments are."""
        ...

    def hold_wal(self, keep_from: Callable[[], int]) -> Callable[[], None]:
        """Keep segments from ``keep_from()`` on; returns the release."""
        ...

    def series_labels(self, series_id: int) -> Labels | None:
        """Labels of a known series."""
        ...


Blocking = Callable[..., Awaitable[Any]]
#: The metric families whose metadata is sent: ``(name, metadata)``, repeats allowed.
MetadataSource = Callable[[], Iterable[tuple[str, MetricMetadata]]]


def redact_url(url: str) -> str:
    """``url`` without user information or query (which may hold credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclass
class QueueStatus:
    """What the status page shows for one queue."""

    name: str
    url: str
    shards: int
    pending: int
    segment: int
    last_send: float | None
    last_error: str | None
    last_error_time: float | None
    samples_sent: int
    samples_failed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(vars(self))


class RemoteWriteQueue:
    """Sends every committed sample of one TSDB to one ``remote_write`` URL."""

    def __init__(
        self,
        config: RemoteWriteConfig,
        source: WalSource,
        *,
        state_dir: Path,
        external_labels: dict[str, str],
        clock: Clock,
        metrics: RemoteMetrics,
        run_blocking: Blocking,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.name = config.queue_name
        self.url = redact_url(config.url)
        self._source = source
        self._clock = clock
        self._blocking = run_blocking
        self._external = sorted(external_labels.items())
        self._relabel = Relabeler(config.write_relabel_configs)
        self._label_bytes: dict[int, bytes | None] = {}
        self._poster = Poster(config, transport)
        self._metrics = metrics.queue(self.name, self.url)
        self._cursor_file = CursorFile(state_dir / f"{self.name}.json")
        q = config.queue_config
        self.shards = q.min_shards
        self._metrics.set_shard_limits(q.min_shards, q.max_shards, q.capacity)
        self._watcher: WalWatcher | None = None
        self._release: Callable[[], None] | None = None
        # A first start sends what was written from the moment the monitor built this
        # queue, before any source ran, not from when the queue got to open.
        self._built_ms = int(clock.time() * 1000)
        self._since_ms = 0
        self._acked: Cursor | None = None  # everything before it is answered (and saved)
        self._resume: RoundState | None = None  # a round a crash or a stop interrupted
        self._round: RoundState | None = None  # the round being sent
        # Requests still on the wire when a stop cancelled their round (see _send_shard).
        self._on_wire: set[asyncio.Future[None]] = set()
        self.pending = 0
        self.last_send: float | None = None
        self.last_error: str | None = None
        self.last_error_time: float | None = None
        self.samples_sent = 0
        self.samples_failed = 0

    # -- lifespan -----------------------------------------------------------------------

    def open(self) -> None:
        """Load (or create) the cursor, hold the WAL from it, read the series before it."""
        loaded = self._cursor_file.load()
        directory = self._source.wal_directory
        if loaded is None:
            segments = sorted(int(e.name) for e in directory.iterdir() if e.name.isdigit())
            cursor = Cursor(segments[0] if segments else 1, 0, 0)
            self._since_ms = self._built_ms
            self._cursor_file.save(cursor, self._since_ms)
        else:
            cursor, self._since_ms, self._resume = loaded
        self._acked = cursor
        watcher = WalWatcher(
            directory, cursor, since_ms=self._since_ms, labels_of=self._source.series_labels
        )
        self._watcher = watcher
        self._release = self._source.hold_wal(self._held_segment)
        watcher.load_series()
        _log.info(
            "remote write queue started",
            queue=self.name,
            url=self.url,
            segment=cursor.segment,
            offset=cursor.offset,
        )

    def _held_segment(self) -> int:
        acked = self._acked
        return acked.segment if acked is not None else 0

    async def close(self, flush_deadline: float = 4.0) -> None:
        """Send what is left (within ``flush_deadline``), release the WAL, close the client."""
        await self.drain(flush_deadline)
        self._cursor_file.close()
        if self._release is not None:
            self._release()
            self._release = None
        await self._poster.aclose()

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the WAL and send until cancelled."""
        watcher = self._watcher
        assert watcher is not None, "open() first"
        q = self.config.queue_config
        if self._resume is not None:
            # A crash interrupted a round: rebuild it and send only what was not answered.
            state, self._resume = self._resume, None
            got = await self._blocking(watcher.read, state.count)
            await self._send_round(got.ids, got.ts, got.vals, full=False, state=state)
        ids: array[int] = array("q")
        ts: array[int] = array("q")
        vals: array[float] = array("d")
        first_at = 0.0
        try:
            while True:
                limit = self.shards * q.capacity - len(ids)
                got = await self._blocking(watcher.read, limit)
                if got.ids:
                    if not ids:
                        first_at = self._clock.monotonic()
                    ids.extend(got.ids)
                    ts.extend(got.ts)
                    vals.extend(got.vals)
                    self._metrics.samples_in.inc(len(got.ids))
                    self._metrics.note_read(max(got.ts))
                if got.segments_lost:
                    _log.warning(
                        "remote write: WAL segments expired before they were sent",
                        queue=self.name,
                        segments=got.segments_lost,
                    )
                self._metrics.current_segment.set(watcher.cursor.segment)
                self.pending = len(ids)
                self._metrics.pending.set(len(ids))
                due = ids and (
                    len(ids) >= q.max_samples_per_send
                    or self._clock.monotonic() - first_at >= q.batch_send_deadline
                )
                if due:
                    await self._send_round(ids, ts, vals, full=len(got.ids) >= limit)
                    ids, ts, vals = array("q"), array("q"), array("d")
                    self.pending = 0
                    self._metrics.pending.set(0)
                elif not got.ids:
                    if not ids and watcher.cursor != self._acked:
                        self._ack(watcher.cursor)  # only SERIES records were read
                    await self._clock.sleep(POLL_INTERVAL)
        finally:
            # Cancelled mid-round: the round is rebuilt and only its unanswered requests
            # are sent again (by drain() on a clean stop); what was read after it, too.
            if self._round is not None:
                self._resume, self._round = self._round, None
            if self._acked is not None:
                watcher.rewind(self._acked)

    def _ack(self, cursor: Cursor) -> None:
        self._acked = cursor
        self._cursor_file.save(cursor, self._since_ms)

    async def drain(self, deadline: float) -> None:
        """Send what the WAL holds past the cursor, for at most ``deadline`` seconds.

        Called on shutdown after the sources stopped, as Prometheus flushes its
        queues: a clean stop leaves the receiver complete. What does not make
        it (a receiver down) stays after the saved cursor for the next start.
        """
        watcher = self._watcher
        if watcher is None:
            return
        capacity = self.config.queue_config.capacity

        async def send_all() -> None:
            if self._on_wire:  # answers first, so the round below skips what they carried
                await asyncio.gather(*self._on_wire, return_exceptions=True)
            if self._resume is not None:
                state, self._resume = self._resume, None
                got = await self._blocking(watcher.read, state.count)
                await self._send_round(got.ids, got.ts, got.vals, full=False, state=state)
            for _ in range(100_000):  # bounded: each round consumes WAL
                got = await self._blocking(watcher.read, self.shards * capacity)
                if not got.ids:
                    if watcher.cursor != self._acked:
                        self._ack(watcher.cursor)
                    return
                await self._send_round(got.ids, got.ts, got.vals, full=False)

        try:
            await asyncio.wait_for(send_all(), deadline)
        except TimeoutError:
            _log.warning("remote write: not everything was sent before shutdown", queue=self.name)
        finally:
            # Past the deadline a request on the wire is abandoned; the saved round
            # resends it at the next start (its answer, if any, was never read).
            for sending in list(self._on_wire):
                sending.cancel()
            await asyncio.gather(*self._on_wire, return_exceptions=True)
            self._round = None
            if self._acked is not None:
                watcher.rewind(self._acked)

    async def _send_round(
        self,
        ids: array[int],
        ts: array[int],
        vals: array[float],
        *,
        full: bool,
        state: RoundState | None = None,
    ) -> None:
        """Send one round; on return every request is answered and the cursor saved past it."""
        watcher = self._watcher
        assert watcher is not None
        assert self._acked is not None
        if state is None:
            state = RoundState(len(ids), self.shards, self.config.queue_config.max_samples_per_send)
        planned = split_round(
            ids,
            ts,
            vals,
            label_bytes=self._label_bytes_of,
            shards=state.shards,
            per_send=state.per_send,
        )
        if planned.dropped:
            self._metrics.samples_dropped.inc(planned.dropped)
        start = self._acked
        retried_before = self._metrics.retries

        def answered(shard: int) -> None:
            # Saved at each answer: a crash resends only the unanswered requests.
            state.done[shard] = state.done.get(shard, 0) + 1
            self._cursor_file.save(start, self._since_ms, state)

        self._round = state
        await asyncio.gather(
            *(
                self._send_shard(i, requests, state.done.get(i, 0), partial(answered, i))
                for i, requests in enumerate(planned.shards)
                if requests
            )
        )
        self._round = None
        self._ack(watcher.cursor)
        self._reshard(full=full, retried=self._metrics.retries != retried_before)

    def _label_bytes_of(self, sid: int) -> bytes | None:
        found = self._label_bytes.get(sid, b"")
        return self._labels(sid) if found == b"" else found

    def _labels(self, sid: int) -> bytes | None:
        watcher = self._watcher
        assert watcher is not None
        labels = watcher.labels_for(sid)
        out: bytes | None = None
        if labels is not None:
            lb = dict(labels)
            for name, value in self._external:
                lb.setdefault(name, value)
            relabeled = self._relabel.process(lb) if self._relabel else lb
            if relabeled and relabeled.get("__name__"):
                out = encode_labels(relabeled.items())
        else:
            _log.warning("remote write: a WAL series has no labels; skipped", series_id=sid)
        self._label_bytes[sid] = out
        return out

    async def _send_shard(
        self, shard: int, requests: list[Request], skip: int, answered: Callable[[], None]
    ) -> None:
        # One shard's requests, in order; the first ``skip`` were answered before a crash.
        for request in requests[skip:]:
            sending = asyncio.ensure_future(self._send_request(request, shard, answered))
            try:
                await asyncio.shield(sending)
            except asyncio.CancelledError:
                # A stop cancels the round, not a request the receiver may already hold:
                # drain() waits for its answer, so the receiver never gets it twice.
                if not sending.done():
                    self._on_wire.add(sending)
                    sending.add_done_callback(self._on_wire.discard)
                raise

    async def _send_request(
        self, request: Request, shard: int, answered: Callable[[], None]
    ) -> None:
        body = snappy_compress(request.body())
        seconds = await self._post(body, request.count, "samples", shard)
        if seconds is None:
            self.samples_failed += request.count
        else:
            self._metrics.observe_sent(request.count, len(body), seconds, request.newest_ms)
            self.samples_sent += request.count
        answered()

    async def _post(
        self, body: bytes, count: int, what: Literal["samples", "metadata"], shard: int = 0
    ) -> float | None:
        """Send ``body`` until it is answered: the seconds the answering request took, or
        None if the receiver refused it (a 4xx: sending it again cannot succeed)."""
        q = self.config.queue_config
        backoff = q.min_backoff
        m = self._metrics
        failed, retried = (
            (m.samples_failed, m.samples_retried)
            if what == "samples"
            else (m.metadata_failed, m.metadata_retried)
        )
        for attempt in range(1_000_000):  # bounded; in practice ends by success, drop or cancel
            started = time.monotonic()
            delay = backoff
            try:
                response = await self._poster.post(body, shard)
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            else:
                status = response.status_code
                if 200 <= status < 300:
                    self.last_send = self._clock.time()
                    if self.last_error is not None and attempt:
                        _log.info("remote write recovered", queue=self.name, url=self.url)
                    self.last_error = None
                    return time.monotonic() - started
                text = response.text[:256].strip()
                error = f"HTTP {status}: {text}" if text else f"HTTP {status}"
                retry = status >= 500 or (status == 429 and q.retry_on_http_429)
                if not retry:
                    failed.inc(count)
                    self._error(error)
                    _log.error(
                        f"remote write: the receiver refused a batch of {what}; it is dropped",
                        queue=self.name,
                        url=self.url,
                        count=count,
                        error=error,
                    )
                    return None
                if status == 429:
                    delay = max(delay, _retry_after(response))
            if attempt == 0 or self.last_error != error:
                _log.warning(
                    f"remote write of {what} failed; retrying",
                    queue=self.name,
                    url=self.url,
                    error=error,
                    backoff=delay,
                )
            self._error(error)
            retried.inc(count)
            if what == "samples":
                m.retries += 1
            await self._clock.sleep(delay)
            backoff = min(backoff * 2, q.max_backoff)
        return None  # pragma: no cover - the bound above is never reached

    # -- metadata -------------------------------------------------------------------------

    async def run_metadata(self, families: MetadataSource) -> None:
        """Send the metric metadata of ``families()`` every ``send_interval`` until cancelled.

        As Prometheus 2.x does: metadata is not in the WAL, so each round sends
        what the scrape targets currently expose (``# TYPE``, ``# HELP``,
        ``# UNIT`` per family) in requests of ``max_samples_per_send`` entries.
        """
        mc = self.config.metadata_config
        for _ in range(1 << 62):  # bounded; ends when cancelled
            await self._clock.sleep(mc.send_interval)
            await self.send_metadata(families())

    async def send_metadata(self, families: Iterable[tuple[str, MetricMetadata]]) -> int:
        """Send ``families`` (deduplicated, sorted by name); returns how many were acknowledged."""
        entries = sorted({(name, m.type, m.help, m.unit) for name, m in families})
        per_send = self.config.metadata_config.max_samples_per_send
        sent = 0
        for start in range(0, len(entries), per_send):
            batch = entries[start : start + per_send]
            body = snappy_compress(encode_metadata(batch))
            if await self._post(body, len(batch), "metadata") is not None:
                self._metrics.metadata.inc(len(batch))
                self._metrics.metadata_bytes.inc(len(body))
                sent += len(batch)
        return sent

    def _error(self, error: str) -> None:
        self.last_error = error
        self.last_error_time = self._clock.time()

    def _reshard(self, *, full: bool, retried: bool) -> None:
        # A round that filled every shard's buffer without a retry means the
        # queue is behind: more requests in flight help (and a round is
        # ``shards x capacity`` samples, so fewer, bigger rounds). A light
        # round gives shards back. Changing between rounds keeps each series
        # on one shard.
        q = self.config.queue_config
        if full and not retried:
            desired = min(q.max_shards, self.shards * 2)
        elif not full:
            desired = max(q.min_shards, self.shards // 2)
        else:
            desired = self.shards
        self._metrics.shards_desired.set(desired)
        self.shards = desired
        self._metrics.shards.set(desired)

    def status(self) -> QueueStatus:
        """A snapshot for the status page."""
        watcher = self._watcher
        return QueueStatus(
            name=self.name,
            url=self.url,
            shards=self.shards,
            pending=self.pending,
            segment=watcher.cursor.segment if watcher is not None else 0,
            last_send=self.last_send,
            last_error=self.last_error,
            last_error_time=self.last_error_time,
            samples_sent=self.samples_sent,
            samples_failed=self.samples_failed,
        )


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("Retry-After", "")
    with contextlib.suppress(ValueError):
        return min(float(value), 300.0)
    return 0.0
