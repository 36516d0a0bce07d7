"""A queue against a recording receiver: answers, retries, drops, auth, relabeling, resuming.

The receiver is a local HTTP server that records each request and answers
what the test says; the storage is the real TSDB in a temporary directory.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from soulwatch.clock import SystemClock
from soulwatch.exceptions import ConfigError
from soulwatch.remote.config import RemoteWriteConfig
from soulwatch.remote.manager import RemoteWriteManager
from soulwatch.remote.proto import decode_write_request
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels
from tests.helpers import Recorder, Reply, free_port

FAST = {"batch_send_deadline": 0.2, "min_backoff": 0.02, "max_backoff": 0.1}


def _config(url: str, **extra: Any) -> RemoteWriteConfig:
    queue = {**FAST, **extra.pop("queue_config", {})}
    return RemoteWriteConfig.model_validate(
        {"url": url, "name": "q", "queue_config": queue, **extra}
    )


class Harness:
    """A TSDB, a manager over it, and helpers to append and to read what arrived."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.db = TSDB(StorageConfig(path=root / "tsdb"))
        self.registry = CollectorRegistry()
        self.t_ms = int(time.time() * 1000)
        self.manager: RemoteWriteManager | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, *configs: RemoteWriteConfig, external: dict[str, str] | None = None) -> None:
        self.manager = RemoteWriteManager(
            list(configs),
            self.db,
            state_dir=self.root / "remote_write",
            external_labels=external or {},
            clock=SystemClock(),
            run_blocking=asyncio.to_thread,
            registry=self.registry,
        )
        self.task = asyncio.get_running_loop().create_task(self.manager.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.manager is not None:
            await self.manager.close(flush_deadline=0.5)

    def scrape(self, n: int, name: str = "m") -> list[tuple[Labels, int, float]]:
        """Commit one batch of ``n`` series at the next second."""
        self.t_ms += 1000
        app = self.db.appender()
        out = []
        for i in range(n):
            labels = Labels.of(__name__=name, i=str(i))
            app.append(labels, self.t_ms, float(i))
            out.append((labels, self.t_ms, float(i)))
        app.commit()
        return out

    def metric(self, name: str) -> float:
        value = self.registry.get_sample_value(name, {"remote_name": "q", "url": self.url})
        return value or 0.0

    url = ""


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()
    h.db.close()


async def until(predicate: Callable[[], Any], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def arrived(recorder: Recorder, status: int = 204) -> list[tuple[Labels, int, float]]:
    """Samples of the requests the receiver acknowledged, in order."""
    out = []
    for request in recorder.received("/write"):
        if getattr(request, "answered", status) != status:
            continue
        for labels, samples in decode_write_request(request.body):
            out.extend((labels, t, v) for t, v in samples)
    return out


def _answers(recorder: Recorder, statuses: list[int]) -> None:
    # Answer the first requests with ``statuses`` (then 204), remembering each answer.
    def handler(request: Any) -> Reply:
        status = statuses.pop(0) if statuses else 204
        request.answered = status
        body = b"" if status == 204 else f"answer {status}".encode()
        return Reply(status, body, {"Retry-After": "0"} if status == 429 else {})

    recorder.handler = handler


async def test_every_sample_arrives_with_remote_write_headers(
    harness: Harness, recorder: Recorder
) -> None:
    _answers(recorder, [])
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    sent = harness.scrape(3) + harness.scrape(1200)  # a big scrape takes several requests
    await until(lambda: len(arrived(recorder)) == len(sent))
    assert sorted(arrived(recorder)) == sorted(sent)
    request = recorder.received("/write")[0]
    assert request.headers["content-encoding"] == "snappy"
    assert request.headers["content-type"] == "application/x-protobuf"
    assert request.headers["x-prometheus-remote-write-version"] == "0.1.0"
    assert all(len(decode_write_request(r.body)) <= 500 for r in recorder.received("/write"))
    # The receiver has the last request a moment before the queue reads its answer.
    await until(lambda: harness.metric("prometheus_remote_storage_samples_total") >= len(sent))
    assert harness.metric("prometheus_remote_storage_samples_total") == len(sent)
    highest = harness.metric("prometheus_remote_storage_queue_highest_sent_timestamp_seconds")
    assert highest == harness.t_ms / 1000


async def test_a_400_drops_that_batch_says_so_and_the_queue_goes_on(
    harness: Harness, recorder: Recorder
) -> None:
    _answers(recorder, [400])
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    harness.scrape(5, "refused")
    await until(lambda: harness.metric("prometheus_remote_storage_samples_failed_total") == 5)
    accepted = harness.scrape(7, "accepted")
    await until(lambda: len(arrived(recorder)) == 7)
    assert sorted(arrived(recorder)) == sorted(accepted)
    assert len(recorder.received("/write")) == 2  # the refused batch was not sent again
    assert harness.manager is not None
    [status] = harness.manager.status()
    assert status["samples_failed"] == 5
    assert status["last_error"] is None  # the later success cleared it
    assert harness.metric("prometheus_remote_storage_samples_retried_total") == 0


@pytest.mark.parametrize("statuses", [[500, 503, 502], [429, 429]])
async def test_5xx_and_429_are_retried_with_backoff_until_accepted(
    harness: Harness, recorder: Recorder, statuses: list[int]
) -> None:
    retries = len(statuses)
    _answers(recorder, list(statuses))
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url, queue_config={"retry_on_http_429": True}))
    sent = harness.scrape(4)
    await until(lambda: len(arrived(recorder)) == 4)
    assert sorted(arrived(recorder)) == sorted(sent)
    assert len(recorder.received("/write")) == retries + 1
    assert harness.metric("prometheus_remote_storage_samples_retried_total") == 4 * retries
    assert harness.metric("prometheus_remote_storage_samples_failed_total") == 0


async def test_429_is_dropped_when_retry_on_http_429_is_off(
    harness: Harness, recorder: Recorder
) -> None:
    _answers(recorder, [429])
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    harness.scrape(4)
    await until(lambda: harness.metric("prometheus_remote_storage_samples_failed_total") == 4)
    assert len(recorder.received("/write")) == 1


async def test_an_unreachable_url_and_a_tls_mismatch_show_in_the_status(
    harness: Harness, recorder: Recorder
) -> None:
    refused = f"http://127.0.0.1:{free_port()}/write"
    tls = f"https://127.0.0.1:{recorder.port}/write"  # the receiver speaks plain HTTP
    harness.url = refused
    harness.start(
        _config(refused, name="refused"),
        _config(tls, name="tls"),
    )
    harness.scrape(2)
    assert harness.manager is not None
    manager = harness.manager
    await until(lambda: all(s["last_error"] for s in manager.status()))
    by_name = {s["name"]: s for s in manager.status()}
    assert "ConnectError" in by_name["refused"]["last_error"]
    assert "SSL" in by_name["tls"]["last_error"] or "ssl" in by_name["tls"]["last_error"]
    assert by_name["tls"]["samples_sent"] == 0


def test_an_unreadable_ca_file_or_secret_is_an_error_at_start(tmp_path: Path) -> None:
    with TSDB(StorageConfig(path=tmp_path / "tsdb")) as db:
        for extra, what in [
            ({"tls_config": {"ca_file": str(tmp_path / "missing.pem")}}, "tls_config"),
            ({"bearer_token_file": str(tmp_path / "missing")}, "bearer_token_file"),
        ]:
            with pytest.raises(ConfigError, match=what):
                RemoteWriteManager(
                    [_config("https://127.0.0.1:1/write", **extra)],
                    db,
                    state_dir=tmp_path / "rw",
                    external_labels={},
                    clock=SystemClock(),
                    run_blocking=asyncio.to_thread,
                )


async def test_relabeling_external_labels_and_auth_reach_the_receiver(
    harness: Harness, recorder: Recorder
) -> None:
    _answers(recorder, [])
    harness.url = recorder.url + "/write"
    harness.start(
        _config(
            harness.url,
            basic_auth={"username": "sw", "password": "s3cret"},
            headers={"X-Scope-OrgID": "team-a"},
            write_relabel_configs=[
                {"source_labels": ["__name__"], "regex": "debug_.*", "action": "drop"}
            ],
        ),
        external={"cluster": "eu-1"},
    )
    harness.scrape(2, "debug_thing")
    harness.scrape(2, "kept")
    await until(lambda: len(arrived(recorder)) == 2)
    assert {labels.get("cluster") for labels, _, _ in arrived(recorder)} == {"eu-1"}
    assert {labels.name for labels, _, _ in arrived(recorder)} == {"kept"}
    request = recorder.received("/write")[0]
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"sw:s3cret").decode()
    assert request.headers["x-scope-orgid"] == "team-a"
    assert harness.metric("prometheus_remote_storage_samples_dropped_total") == 2


async def test_a_round_cut_by_a_crash_resends_only_its_unanswered_requests(
    harness: Harness, recorder: Recorder
) -> None:
    # As left by a kill -9 after the first of three requests of a round was answered.
    sent = harness.scrape(1200)
    state = harness.root / "remote_write" / "q.json"
    state.parent.mkdir()
    state.write_text(
        json.dumps(
            {
                "segment": 1,
                "offset": 0,
                "skip": 0,
                "since_ms": 0,
                "round": {"count": 1200, "shards": 1, "per_send": 500, "done": {"0": 1}},
            }
        )
    )
    _answers(recorder, [])
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    await until(lambda: len(arrived(recorder)) == 700)
    await asyncio.sleep(0.5)
    assert len(arrived(recorder)) == 700
    # The first request held the first 500 series; it is not sent again.
    assert sorted(arrived(recorder)) == sorted(sent[500:])
    assert json.loads(state.read_text()).get("round") is None


async def test_a_clean_stop_during_a_round_sends_each_sample_once(
    harness: Harness, recorder: Recorder
) -> None:
    # The receiver is slow to answer the round's second request: the stop comes while
    # the first is answered and the second is on the wire. The stop lets the second
    # finish and sends only the third: nothing is lost and nothing arrives twice
    # (a receiver without deduplication, such as VictoriaMetrics, would count it twice).
    on_wire = threading.Event()

    def handler(request: Any) -> Reply:
        request.answered = 204
        if len(recorder.requests) == 2:
            on_wire.set()
            time.sleep(0.4)
        return Reply(204, b"")

    recorder.handler = handler
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url, queue_config={"max_shards": 1, "min_shards": 1}))
    sent = harness.scrape(1200)  # three requests of at most 500 samples, one shard
    await until(on_wire.is_set)
    await harness.stop()
    assert len(recorder.received("/write")) == 3
    assert sorted(arrived(recorder)) == sorted(sent)
    assert harness.metric("prometheus_remote_storage_samples_total") == len(sent)
    saved = json.loads((harness.root / "remote_write" / "q.json").read_text())
    assert saved.get("round") is None  # the round was finished, not left for the next start


async def test_the_wal_is_kept_until_sent_and_released_after(
    harness: Harness, recorder: Recorder
) -> None:
    statuses = [503] * 10_000
    _answers(recorder, statuses)  # the receiver is down
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    sent = harness.scrape(10)
    await until(lambda: recorder.received("/write"))
    for _ in range(3):  # segments closed and compacted: normally deletable
        harness.db.maintain(force=True)
        harness.scrape(10)
    segments = sorted(p.name for p in harness.db.wal_directory.iterdir())
    assert segments[0] == "00000001"  # still held: its samples are not sent
    statuses.clear()  # the receiver is back
    await until(lambda: len(arrived(recorder)) == 40)
    assert set(sent) < set(arrived(recorder))

    def released() -> bool:
        # The queue saves its cursor a moment after the receiver has the last request.
        harness.db.maintain(force=True)
        return "00000001" not in {p.name for p in harness.db.wal_directory.iterdir()}

    await until(released)


async def test_a_new_queue_sends_from_its_first_start_not_the_stores_past(
    harness: Harness, recorder: Recorder
) -> None:
    harness.t_ms -= 60_000  # written a minute ago, before remote_write was configured
    harness.scrape(5, "old")
    harness.t_ms += 60_000
    _answers(recorder, [])
    harness.url = recorder.url + "/write"
    harness.start(_config(harness.url))
    await asyncio.sleep(0.3)
    new = harness.scrape(3, "new")
    await until(lambda: len(arrived(recorder)) == 3)
    await asyncio.sleep(0.3)
    assert sorted(arrived(recorder)) == sorted(new)


async def test_a_new_queue_sends_what_was_scraped_while_it_was_opening(
    harness: Harness, recorder: Recorder
) -> None:
    # The monitor builds its queues before the first scrape, but a queue opens (reads the
    # WAL) in a worker while the first scrapes are already appended: those are sent too.
    _answers(recorder, [])
    harness.url = recorder.url + "/write"
    harness.manager = RemoteWriteManager(
        [_config(harness.url)],
        harness.db,
        state_dir=harness.root / "remote_write",
        external_labels={},
        clock=SystemClock(),
        run_blocking=asyncio.to_thread,
        registry=harness.registry,
    )
    harness.t_ms = int(time.time() * 1000) - 1000 + 5  # the next scrape: 5 ms after it was built
    first = harness.scrape(3, "first")
    await asyncio.sleep(0.05)  # the queue opens only after the first scrape's sample time
    harness.task = asyncio.get_running_loop().create_task(harness.manager.run())
    await until(lambda: len(arrived(recorder)) == 3)
    assert sorted(arrived(recorder)) == sorted(first)
