"""The console's live event stream: what it sends, its bounds, and a prompt shutdown."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.console.events import LiveEvents
from soulwatch.api.views import SilenceStoreView
from soulwatch.clock import SimulatedClock
from soulwatch.config import SoulwatchConfig
from tests.api.console.support import running_soulwatch
from tests.api.support import SILENCER, bearer, serve
from tests.helpers import UvicornThread, wait_until


class _Feed:
    """A signature the test changes, as alert states change."""

    def __init__(self) -> None:
        self.state = "ok"

    def __call__(self) -> tuple[Any, dict[str, int]]:
        return self.state, {"firing": int(self.state == "firing"), "pending": 0}


@pytest.fixture
def hub() -> Iterator[tuple[LiveEvents, _Feed, str]]:
    feed = _Feed()
    events = LiveEvents(feed, max_clients=2, poll=0.05, keepalive=0.3)

    async def endpoint(request: Request) -> Response:
        return events.response(request.query_params.get("tick", ""))

    with UvicornThread(Starlette(routes=[Route("/events", endpoint)])) as server:
        yield events, feed, server.url
        events.close()


def _lines(lines: Iterator[str], until: str) -> list[str]:
    seen = []
    for line in lines:
        seen.append(line)
        if line.startswith(until):
            return seen
    raise AssertionError(f"the stream ended before {until!r}: {seen}")


def test_state_changes_are_pushed_with_keepalives_and_ticks(
    hub: tuple[LiveEvents, _Feed, str],
) -> None:
    _, feed, url = hub
    with httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("GET", "/events", params={"tick": "1"}) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.iter_lines()
            assert _lines(lines, "retry:") == ["retry: 3000"]
            assert ": keepalive" in _lines(lines, ": keepalive")
            feed.state = "firing"
            pushed = _lines(lines, "data:")
            assert pushed[-2:] == ["event: alerts", 'data: {"firing": 1, "pending": 0}']
            assert "event: tick" in _lines(lines, "event: tick")
        for bad in ("0", "soon", "99999"):
            reply = client.get("/events", params={"tick": bad})
            assert reply.status_code == 400
            assert "tick" in reply.text


def test_the_number_of_streams_is_capped_and_a_gone_page_frees_its_place(
    hub: tuple[LiveEvents, _Feed, str],
) -> None:
    events, _, url = hub
    with httpx.Client(base_url=url, timeout=10) as a, httpx.Client(base_url=url, timeout=10) as b:
        with a.stream("GET", "/events") as first, b.stream("GET", "/events") as second:
            assert (first.status_code, second.status_code) == (200, 200)
            refused = httpx.get(url + "/events", timeout=10)
            assert refused.status_code == 503
            assert "polling" in refused.text
            assert refused.headers["retry-after"] == "30"
        # Both pages left: their places are free again (no write needed to notice).
        wait_until(lambda: events.clients == 0, timeout=5, what="streams forgotten")
        with a.stream("GET", "/events") as again:
            assert again.status_code == 200


def test_close_ends_every_stream(hub: tuple[LiveEvents, _Feed, str]) -> None:
    events, _, url = hub
    with httpx.Client(base_url=url, timeout=10) as client:
        with client.stream("GET", "/events") as stream:
            lines = stream.iter_lines()
            _lines(lines, "retry:")
            events.close()
            # The body ends cleanly (the last chunk arrives), with nothing after.
            rest = [line for line in lines if line]
            assert rest == []
        assert client.get("/events").status_code == 503


def test_the_console_stream_needs_the_same_login_as_its_pages(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    config = SoulwatchConfig.model_validate({"console": {"live_clients": 1}})
    with serve(tmp_path, clock, reads="token", config=config) as served:
        anonymous = httpx.get(served.url + "/-/console/events", timeout=10)
        assert anonymous.status_code == 401


def test_soulwatch_stops_at_once_with_live_pages_open(tmp_path: Path) -> None:
    ended: list[str] = []
    opened = threading.Semaphore(0)

    def watch(url: str) -> None:
        try:
            with httpx.stream("GET", url + "/-/console/events", timeout=30) as stream:
                for line in stream.iter_lines():
                    if line.startswith("retry:"):
                        opened.release()
            ended.append("clean" if stream.status_code == 200 else str(stream.status_code))
        except httpx.HTTPError as exc:
            ended.append(repr(exc))

    with running_soulwatch(tmp_path) as sw:
        readers = [threading.Thread(target=watch, args=(sw.url,)) for _ in range(3)]
        for reader in readers:
            reader.start()
        for _ in readers:
            assert opened.acquire(timeout=10), "a stream did not open"
        sw.proc.send_signal(signal.SIGTERM)
        assert sw.proc.wait(timeout=20) == 0
        for reader in readers:
            reader.join(timeout=10)
        log = sw.log.read_text()
    assert ended == ["clean"] * 3
    # uvicorn did not have to wait out its graceful timeout and cancel the streams.
    assert "graceful shutdown exceeded" not in log
    assert "shutdown complete" in log


def test_a_new_or_expired_silence_is_pushed_at_once(tmp_path: Path, clock: SimulatedClock) -> None:
    silence = {
        "matchers": [{"name": "alertname", "value": "BackendDown", "isRegex": False}],
        "startsAt": "2023-11-14T22:00:00Z",
        "endsAt": "2023-11-15T02:00:00Z",
        "createdBy": "oncall",
        "comment": "deploying",
    }
    store = SilenceStore(tmp_path / "silences.sqlite", clock)
    try:
        with serve(tmp_path, clock, silences=SilenceStoreView(store)) as served:
            # An hour's tick and the default 15 s keepalive: nothing else to read meanwhile.
            params = {"tick": "3600"}
            with httpx.stream(
                "GET", served.url + "/-/console/events", params=params, timeout=10
            ) as stream:
                lines = stream.iter_lines()
                _lines(lines, "retry:")
                created = served.http.post(
                    "/api/v2/silences", json=silence, headers=bearer(SILENCER)
                )
                assert created.status_code == 200, created.text
                assert _lines(lines, "data:")[-2] == "event: alerts"
                silence_id = created.json()["silenceID"]
                expired = served.http.delete(
                    f"/api/v2/silence/{silence_id}", headers=bearer(SILENCER)
                )
                assert expired.status_code == 200, expired.text
                assert _lines(lines, "data:")[-2] == "event: alerts"
    finally:
        store.close()


def _live_clients(sw: Any) -> float:
    text: str = sw.api.get("/metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("soulwatch_console_live_clients ")]
    return float(line.split()[1])


def test_open_streams_are_counted_in_soulwatchs_metrics(tmp_path: Path) -> None:
    with running_soulwatch(tmp_path) as sw:
        assert _live_clients(sw) == 0
        with httpx.stream("GET", sw.url + "/-/console/events", timeout=10) as stream:
            # Held: a dropped line iterator would close the stream.
            lines = stream.iter_lines()
            _lines(lines, "retry:")
            assert _live_clients(sw) == 1
        wait_until(lambda: _live_clients(sw) == 0, timeout=10, what="the closed stream forgotten")
