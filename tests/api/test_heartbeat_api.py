"""healthchecks-compatible pings and heartbeat CRUD over real uvicorn, on a simulated clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from soulwatch.clock import SimulatedClock
from soulwatch.sources.heartbeats import HeartbeatCheckConfig, HeartbeatsConfig
from soulwatch.tsdb.memory import MemoryStorage
from tests.api.support import ADMIN, PUSHER, Served, bearer, serve

UUID = "5f3b1c2a-8d4e-4f6a-9b0c-1d2e3f4a5b6c"
KEY = "pingkey-abcdefghijklmnop"


@pytest.fixture
def served(tmp_path: Path, clock: SimulatedClock) -> Iterator[Served]:
    config = HeartbeatsConfig(
        ping_key=KEY,
        auto_create=True,
        max_body_bytes=100,
        checks=[
            HeartbeatCheckConfig.model_validate(
                {"name": "reddit-poller", "uuid": UUID, "period": "5m", "grace": "1m"}
            )
        ],
    )
    with serve(tmp_path, clock, storage=MemoryStorage(), heartbeats=config) as s:
        yield s


def _status(served: Served, name: str = "reddit-poller") -> str:
    r = served.http.get(f"/api/v1/heartbeats/{name}")
    assert r.status_code == 200, r.text
    status: str = r.json()["status"]
    return status


def test_ping_kinds_answer_ok(served: Served) -> None:
    for suffix in ("", "/start", "/fail", "/log", "/0", "/7"):
        r = served.http.get(f"/ping/{UUID}{suffix}")
        assert (r.status_code, r.text) == (200, "OK"), suffix
    assert served.http.head(f"/ping/{UUID}").status_code == 200
    assert served.http.post(f"/ping/{UUID}", content=b"done").text == "OK"
    r = served.http.get(f"/ping/{UUID}/256")
    assert r.status_code == 400


def test_unknown_ping_targets_all_look_the_same(served: Served) -> None:
    other = "00000000-0000-4000-8000-000000000000"
    answers = {
        (r.status_code, r.text)
        for r in (
            served.http.get(f"/ping/{other}"),
            served.http.get(f"/ping/{other}/start"),
            served.http.get("/ping/not-a-uuid"),
            served.http.get(f"/ping/wrong-key/{'reddit-poller'}"),
            served.http.get(f"/ping/{KEY}/no-such-slug"),
            served.http.get(f"/ping/{UUID}/bogus"),
        )
    }
    assert answers == {(404, "not found")}


def test_slug_pings_auto_create_and_ambiguity(served: Served) -> None:
    assert served.http.get(f"/ping/{KEY}/reddit-poller").text == "OK"
    r = served.http.get(f"/ping/{KEY}/nightly-backup", params={"create": "1"})
    assert (r.status_code, r.text) == (201, "Created")
    assert _status(served, "nightly-backup") == "up"
    body = {"name": "Nightly Backup copy", "slug": "nightly-backup"}
    assert served.http.post("/api/v1/heartbeats", json=body, headers=bearer(ADMIN)).is_success
    r = served.http.get(f"/ping/{KEY}/nightly-backup")
    assert (r.status_code, r.text) == (409, "ambiguous slug")


async def test_schedule_driven_by_the_clock(served: Served, clock: SimulatedClock) -> None:
    monitor = served.ctx.heartbeats
    assert monitor is not None
    assert _status(served) == "new"
    served.http.get(f"/ping/{UUID}")
    assert _status(served) == "up"
    await clock.advance(5 * 60 + 1)
    assert _status(served) == "grace"
    await clock.advance(60)
    monitor.evaluate(clock.time(), served.ctx.storage)
    assert _status(served) == "down"
    # The metric a rule alerts on follows.
    r = served.http.get("/api/v1/query", params={"query": 'heartbeat_up{check="reddit-poller"}'})
    assert r.json()["data"]["result"][0]["value"][1] == "0"
    # Any ping after down resolves it.
    served.http.get(f"/ping/{UUID}")
    assert _status(served) == "up"
    flips = served.http.get("/api/v1/heartbeats/reddit-poller").json()["flips"]
    assert [(f["from"], f["to"]) for f in flips] == [
        ("down", "up"),
        ("grace", "down"),
        ("new", "up"),
    ]


async def test_start_without_finish_goes_down(served: Served, clock: SimulatedClock) -> None:
    rid = "2f1e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
    served.http.get(f"/ping/{UUID}")
    served.http.get(f"/ping/{UUID}/start", params={"rid": rid})
    await clock.advance(59)
    assert _status(served) == "up"
    await clock.advance(2)
    assert _status(served) == "down"


async def test_durations_pair_start_and_end_by_rid(served: Served, clock: SimulatedClock) -> None:
    rid = "2f1e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
    served.http.get(f"/ping/{UUID}/start", params={"rid": rid})
    await clock.advance(12)
    served.http.get(f"/ping/{UUID}", params={"rid": rid})
    assert served.http.get("/api/v1/heartbeats/reddit-poller").json()["last_duration"] == 12
    assert served.http.get(f"/ping/{UUID}", params={"rid": "nope"}).status_code == 400


def test_post_body_is_kept_up_to_the_limit(served: Served) -> None:
    served.http.post(f"/ping/{UUID}/fail", content=b"E" * 500)
    [ping] = served.http.get("/api/v1/heartbeats/reddit-poller/pings").json()["pings"]
    assert ping["kind"] == "fail"
    assert ping["body"] == "E" * 100


def test_oversized_ping_body_is_413(served: Served) -> None:
    r = served.http.post(f"/ping/{UUID}", content=b"x" * (2 << 20))
    assert r.status_code == 413


def test_crud_needs_the_admin_scope(served: Served) -> None:
    body = {"name": "nightly", "schedule": "0 3 * * *", "tz": "Europe/Paris", "grace": "30m"}
    assert served.http.post("/api/v1/heartbeats", json=body).status_code == 401
    r = served.http.post("/api/v1/heartbeats", json=body, headers=bearer(PUSHER))
    assert r.status_code == 403
    r = served.http.post("/api/v1/heartbeats", json=body, headers=bearer(ADMIN))
    assert r.status_code == 201
    created = r.json()
    assert created["schedule"] == "0 3 * * *"
    assert created["grace"] == "30m"
    assert served.http.get(created["ping_url"]).text == "OK"
    r = served.http.post("/api/v1/heartbeats", json=body, headers=bearer(ADMIN))
    assert r.status_code == 409
    update = {**body, "grace": "1h"}
    r = served.http.put("/api/v1/heartbeats/nightly", json=update, headers=bearer(ADMIN))
    assert r.json()["grace"] == "1h"
    assert r.json()["uuid"] == created["uuid"]
    r = served.http.delete("/api/v1/heartbeats/nightly", headers=bearer(ADMIN))
    assert r.status_code == 204
    assert served.http.get("/api/v1/heartbeats/nightly").status_code == 404


def test_config_declared_checks_are_read_only(served: Served) -> None:
    r = served.http.delete("/api/v1/heartbeats/reddit-poller", headers=bearer(ADMIN))
    assert r.status_code == 409
    assert "declared in the config file" in r.json()["error"]


def test_uuid_is_shown_only_to_token_holders(served: Served) -> None:
    [anonymous] = served.http.get("/api/v1/heartbeats").json()["checks"]
    assert "uuid" not in anonymous
    [known] = served.http.get("/api/v1/heartbeats", headers=bearer(ADMIN)).json()["checks"]
    assert known["uuid"] == UUID


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"name": "x", ', 400, "malformed JSON at line 1 column 15"),
        (b'{"name": "x", "period": "soon"}', 400, "period"),
        (b'{"name": "x", "tz": "Mars/Olympus"}', 400, "tz"),
        (b'{"name": "x", "colour": "red"}', 400, "colour"),
        (b"[1, 2]", 400, "body"),
    ],
)
def test_bad_json_names_the_field(served: Served, body: bytes, status: int, fragment: str) -> None:
    headers = {**bearer(ADMIN), "Content-Type": "application/json"}
    r = served.http.post("/api/v1/heartbeats", content=body, headers=headers)
    assert r.status_code == status
    assert fragment in r.json()["error"]


def test_oversized_json_is_413(served: Served) -> None:
    body = b'{"name": "' + b"x" * (2 << 20) + b'"}'
    r = served.http.post("/api/v1/heartbeats", content=body, headers=bearer(ADMIN))
    assert r.status_code == 413


def test_failed_auth_is_logged_without_the_token(served: Served) -> None:
    secret = "not-a-real-token-but-secret-0000"
    with structlog.testing.capture_logs() as logs:
        served.http.post("/api/v1/heartbeats", json={"name": "x"}, headers=bearer(secret))
    [entry] = [e for e in logs if e["event"] == "auth failed"]
    assert entry["reason"] == "invalid token"
    assert entry["path"] == "/api/v1/heartbeats"
    assert secret not in repr(logs)


def test_the_sdk_heartbeat_client_against_the_endpoints(served: Served) -> None:
    from prometheus_client import CollectorRegistry

    from soulwatch.instrument import Heartbeat

    beat = Heartbeat(f"{served.url}/ping/{UUID}", registry=CollectorRegistry())
    assert beat.ping()
    assert _status(served) == "up"
    assert beat.exit_code(3, reason="disk full")
    assert _status(served) == "down"
    [last, *_] = served.http.get("/api/v1/heartbeats/reddit-poller/pings").json()["pings"]
    assert (last["kind"], last["exit_status"], last["body"]) == ("fail", 3, "disk full")
    with beat.run():
        pass
    assert _status(served) == "up"
    assert served.http.get("/api/v1/heartbeats/reddit-poller").json()["started"] is False


async def test_pause_and_resume_through_the_api(served: Served, clock: SimulatedClock) -> None:
    monitor = served.ctx.heartbeats
    assert monitor is not None
    served.http.get(f"/ping/{UUID}/fail")
    assert _status(served) == "down"
    url = "/api/v1/heartbeats/reddit-poller"
    assert served.http.post(f"{url}/pause").status_code == 401
    assert served.http.post(f"{url}/pause", headers=bearer(PUSHER)).status_code == 403
    assert (
        served.http.post("/api/v1/heartbeats/nope/pause", headers=bearer(ADMIN)).status_code == 404
    )
    r = served.http.post(f"{url}/pause", headers=bearer(ADMIN))
    assert (r.status_code, r.json()["status"]) == (200, "paused")
    await clock.advance(86400)
    monitor.evaluate(clock.time(), served.ctx.storage)
    assert _status(served) == "paused"
    query = 'heartbeat_up{check="reddit-poller"}'
    r = served.http.get("/api/v1/query", params={"query": query})
    assert r.json()["data"]["result"][0]["value"][1] == "1"
    # The next ping ends the pause.
    served.http.get(f"/ping/{UUID}")
    assert _status(served) == "up"
    r = served.http.post(f"{url}/resume", headers=bearer(ADMIN))
    assert r.status_code == 409
    assert "not paused" in r.json()["error"]
    served.http.post(f"{url}/pause", headers=bearer(ADMIN))
    r = served.http.post(f"{url}/resume", headers=bearer(ADMIN))
    assert (r.status_code, r.json()["status"]) == (200, "new")
    flips = served.http.get(url).json()["flips"]
    assert [(f["from"], f["to"]) for f in flips][:4] == [
        ("paused", "new"),
        ("up", "paused"),
        ("paused", "up"),
        ("down", "paused"),
    ]
