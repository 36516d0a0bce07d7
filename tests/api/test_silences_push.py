"""Silences at Alertmanager v2 paths over the real silence store; push with its scope and limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from soulwatch.alerting.silences import SilenceStore
from soulwatch.api.views import SilenceStoreView
from soulwatch.clock import SimulatedClock
from soulwatch.config import ApiConfig
from tests.api.support import ADMIN, PUSHER, SILENCER, Served, bearer, serve

SILENCE = {
    "matchers": [{"name": "alertname", "value": "BackendDown", "isRegex": False}],
    "startsAt": "2023-11-14T22:00:00Z",
    "endsAt": "2023-11-15T02:00:00Z",
    "createdBy": "oncall",
    "comment": "deploying",
}


@pytest.fixture
def served(tmp_path: Path, clock: SimulatedClock) -> Iterator[Served]:
    store = SilenceStore(tmp_path / "silences.sqlite", clock)
    try:
        with serve(
            tmp_path, clock, silences=SilenceStoreView(store), api=ApiConfig(push_max_bytes=4096)
        ) as s:
            yield s
    finally:
        store.close()


def test_silence_lifecycle(served: Served) -> None:
    assert served.http.post("/api/v2/silences", json=SILENCE).status_code == 401
    r = served.http.post("/api/v2/silences", json=SILENCE, headers=bearer(PUSHER))
    assert r.status_code == 403
    r = served.http.post("/api/v2/silences", json=SILENCE, headers=bearer(SILENCER))
    assert r.status_code == 200
    silence_id = r.json()["silenceID"]
    got = served.http.get(f"/api/v2/silence/{silence_id}").json()
    assert got["status"] == {"state": "active"}
    assert got["matchers"] == [
        {"name": "alertname", "value": "BackendDown", "isRegex": False, "isEqual": True}
    ]
    assert [s["id"] for s in served.http.get("/api/v2/silences").json()] == [silence_id]
    r = served.http.delete(f"/api/v2/silence/{silence_id}", headers=bearer(ADMIN))
    assert r.status_code == 200
    got = served.http.get(f"/api/v2/silence/{silence_id}").json()
    assert got["status"] == {"state": "expired"}


def test_unknown_silence_is_404(served: Served) -> None:
    assert served.http.get("/api/v2/silence/nope").status_code == 404
    r = served.http.delete("/api/v2/silence/nope", headers=bearer(SILENCER))
    assert r.status_code == 404
    r = served.http.post(
        "/api/v2/silences", json={**SILENCE, "id": "nope"}, headers=bearer(SILENCER)
    )
    assert r.status_code == 404


def test_a_silence_that_cannot_be_stored_is_a_503_naming_the_cause(
    served: Served, tmp_path: Path
) -> None:
    kept = served.http.post("/api/v2/silences", json=SILENCE, headers=bearer(SILENCER))
    kept_id = kept.json()["silenceID"]
    store = served.ctx.silences.store  # type: ignore[union-attr]
    store._db.execute("PRAGMA query_only=ON")  # writes now fail, as on a full disk
    r = served.http.post("/api/v2/silences", json=SILENCE, headers=bearer(SILENCER))
    assert r.status_code == 503
    # Alertmanager's error shape: a JSON string.
    assert r.json().startswith("cannot store the silence: "), r.text
    assert r.json().endswith(f"(data dir {tmp_path})")
    r = served.http.delete(f"/api/v2/silence/{kept_id}", headers=bearer(SILENCER))
    assert r.status_code == 503
    assert r.json().startswith("cannot expire the silence: ")
    listed = served.http.get("/api/v2/silences").json()
    assert [(s["id"], s["status"]["state"]) for s in listed] == [(kept_id, "active")]


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"matchers": []}, "matchers"),
        ({"endsAt": "2023-11-14T21:00:00Z"}, "end after it starts"),
        ({"startsAt": "yesterday"}, "startsAt"),
        ({"createdBy": None}, "createdBy"),
        (
            {"matchers": [{"name": "env", "value": "prod(", "isRegex": True}]},
            "matchers: Value error, matcher env=~'prod(': invalid regular expression",
        ),
    ],
)
def test_invalid_silences_are_400(served: Served, change: dict[str, object], fragment: str) -> None:
    r = served.http.post("/api/v2/silences", json={**SILENCE, **change}, headers=bearer(SILENCER))
    assert r.status_code == 400
    assert fragment in r.json()["error"]


def test_push_stores_samples_with_job_and_grouping_labels(served: Served) -> None:
    body = (
        "# TYPE backup_last_success_timestamp_seconds gauge\n"
        'backup_last_success_timestamp_seconds{db="main"} 1.7e9\n'
        "backup_bytes 1234\n"
    )
    url = "/api/v1/push/job/backup/instance/nightly"
    assert served.http.post(url, content=body).status_code == 401
    assert served.http.post(url, content=body, headers=bearer(SILENCER)).status_code == 403
    r = served.http.post(url, content=body, headers=bearer(PUSHER))
    assert r.status_code == 200
    assert r.json() == {"samples": 2}
    r = served.http.get("/api/v1/query", params={"query": 'backup_bytes{job="backup"}'})
    [sample] = r.json()["data"]["result"]
    assert sample["metric"] == {"__name__": "backup_bytes", "job": "backup", "instance": "nightly"}
    assert sample["value"][1] == "1234"


@pytest.mark.parametrize(
    ("url", "body", "status"),
    [
        ("/api/v1/push/job/backup", "backup_bytes{ 12\n", 400),
        ("/api/v1/push/job/backup/instance", "backup_bytes 1\n", 400),
        ("/api/v1/push/job/backup/__name__/x", "backup_bytes 1\n", 400),
        ("/api/v1/push/job/backup", "x 1\n" * 2000, 413),
    ],
)
def test_bad_pushes_store_nothing(served: Served, url: str, body: str, status: int) -> None:
    r = served.http.post(url, content=body, headers=bearer(PUSHER))
    assert r.status_code == status
    r = served.http.get("/api/v1/series", params={"match[]": '{job="backup"}'})
    assert r.json()["data"] == []
