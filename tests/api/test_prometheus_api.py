"""Prometheus-compatible endpoints over real uvicorn: shapes, errors, status codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.api.support import ADMIN, Served, bearer, serve

T0 = 1_700_000_000


def _storage() -> MemoryStorage:
    storage = MemoryStorage()
    for i in range(0, 600, 15):
        t_ms = (T0 - 600 + i) * 1000
        storage.add(Labels.of(__name__="up", job="api", instance="a:1"), t_ms, 1.0)
        storage.add(Labels.of(__name__="up", job="web", instance="b:2"), t_ms, 0.0)
        storage.add(Labels.of(__name__="req_total", job="api", code="200"), t_ms, 1e21 + i)
    return storage


@pytest.fixture
def served(tmp_path: Path, clock: SimulatedClock) -> Served:
    with serve(tmp_path, clock, storage=_storage()) as s:
        yield s


def test_instant_query_vector_shape(served: Served) -> None:
    r = served.http.get("/api/v1/query", params={"query": 'up{job="api"}', "time": T0})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "vector"
    [sample] = body["data"]["result"]
    assert sample["metric"] == {"__name__": "up", "job": "api", "instance": "a:1"}
    assert sample["value"] == [T0, "1"]


def test_values_are_written_as_prometheus_writes_them(served: Served) -> None:
    r = served.http.get("/api/v1/query", params={"query": "req_total", "time": T0})
    [sample] = r.json()["data"]["result"]
    # Go's FormatFloat(v, 'f', -1): no exponent.
    assert sample["value"][1] == "1000000000000000000000"


def test_query_by_post_form_and_rfc3339_time(served: Served) -> None:
    r = served.http.post(
        "/api/v1/query", data={"query": 'up{job="web"}', "time": "2023-11-14T22:13:20Z"}
    )
    assert r.status_code == 200
    [sample] = r.json()["data"]["result"]
    assert sample["value"] == [T0, "0"]


def test_query_defaults_to_the_clock_and_scalars(served: Served) -> None:
    r = served.http.get("/api/v1/query", params={"query": "42"})
    assert r.json()["data"] == {"resultType": "scalar", "result": [T0, "42"]}


def test_bad_time_is_bad_data_400(served: Served) -> None:
    r = served.http.get("/api/v1/query", params={"query": "up", "time": "yesterday"})
    assert r.status_code == 400
    assert r.json() == {
        "status": "error",
        "errorType": "bad_data",
        "error": "invalid parameter \"time\": Invalid time value for 'time': "
        'cannot parse "yesterday" to a valid timestamp',
    }


def test_parse_error_is_bad_data_400(served: Served) -> None:
    r = served.http.get("/api/v1/query", params={"query": "up{", "time": T0})
    assert r.status_code == 400
    assert r.json()["errorType"] == "bad_data"
    assert r.json()["error"].startswith('invalid parameter "query": ')


def test_range_query_shape(served: Served) -> None:
    params = {"query": 'up{job="api"}', "start": T0 - 60, "end": T0, "step": "30s"}
    r = served.http.get("/api/v1/query_range", params=params)
    assert r.status_code == 200
    data = r.json()["data"]
    assert data["resultType"] == "matrix"
    [series] = data["result"]
    assert series["metric"]["job"] == "api"
    assert series["values"] == [[T0 - 60, "1"], [T0 - 30, "1"], [T0, "1"]]


def test_range_answer_text_special_values_and_escapes(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    # Points are written as text, not by json.dumps: the answer must read the same.
    storage = _storage()
    for i in range(0, 600, 15):
        t_ms = (T0 - 600 + i) * 1000
        storage.add(Labels.of(__name__="odd", path='/a"b\\c é\n'), t_ms, -0.1 * i)
    with serve(tmp_path, clock, storage=storage) as served:
        _check_range_answer_text(served)


def _check_range_answer_text(served: Served) -> None:
    params = {"start": T0 - 3, "end": T0, "step": "1.5"}
    r = served.http.get("/api/v1/query_range", params={"query": "odd", **params})
    assert r.status_code == 200
    [series] = r.json()["data"]["result"]
    assert series == {
        "metric": {"__name__": "odd", "path": '/a"b\\c é\n'},
        "values": [[T0 - 3, "-58.5"], [T0 - 1.5, "-58.5"], [T0, "-58.5"]],
    }
    assert b'[1699999998.5,"-58.5"]' in r.content
    answers = {}
    for query in ("1/0", "-1/0", "0/0", "req_total"):
        r = served.http.get("/api/v1/query_range", params={"query": query, **params})
        [series] = r.json()["data"]["result"]
        answers[query] = series["values"][-1][1]
    assert answers == {
        "1/0": "+Inf",
        "-1/0": "-Inf",
        "0/0": "NaN",
        "req_total": "1000000000000000000000",
    }
    r = served.http.get("/api/v1/query_range", params={"query": "absent_metric", **params})
    assert r.json() == {"status": "success", "data": {"resultType": "matrix", "result": []}}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"start": T0, "end": T0 - 1, "step": 1}, "end timestamp must not be before start time"),
        ({"start": T0, "end": T0 + 1, "step": 0}, "zero or negative query resolution step"),
        ({"start": T0, "end": T0 + 20_000, "step": 1}, "exceeded maximum resolution of 11,000"),
        ({"end": T0, "step": 1}, 'invalid parameter "start"'),
        ({"start": T0, "end": T0, "step": "x"}, 'invalid parameter "step": cannot parse "x"'),
    ],
)
def test_range_query_parameter_errors(
    served: Served, params: dict[str, object], message: str
) -> None:
    r = served.http.get("/api/v1/query_range", params={"query": "up", **params})
    assert r.status_code == 400
    assert r.json()["errorType"] == "bad_data"
    assert message in r.json()["error"]


def test_series_labels_and_values(served: Served) -> None:
    r = served.http.get("/api/v1/series", params=[("match[]", "up"), ("match[]", "req_total")])
    assert r.status_code == 200
    assert r.json()["data"] == [
        {"__name__": "req_total", "code": "200", "job": "api"},
        {"__name__": "up", "instance": "a:1", "job": "api"},
        {"__name__": "up", "instance": "b:2", "job": "web"},
    ]
    r = served.http.get("/api/v1/labels")
    assert r.json()["data"] == ["__name__", "code", "instance", "job"]
    r = served.http.get("/api/v1/labels", params={"match[]": 'up{job="web"}'})
    assert r.json()["data"] == ["__name__", "instance", "job"]
    r = served.http.get("/api/v1/label/job/values")
    assert r.json() == {"status": "success", "data": ["api", "web"]}
    r = served.http.get("/api/v1/label/__name__/values", params={"match[]": '{job="api"}'})
    assert r.json()["data"] == ["req_total", "up"]


def test_series_time_range_excludes_old_series(served: Served) -> None:
    r = served.http.get(
        "/api/v1/series", params={"match[]": "up", "start": T0 + 3600, "end": T0 + 7200}
    )
    assert r.json() == {"status": "success", "data": []}


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/api/v1/series", {}, "no match[] parameter provided"),
        ("/api/v1/series", {"match[]": '{job=~".*"}'}, "at least one non-empty matcher"),
        ("/api/v1/series", {"match[]": "up{"}, 'invalid parameter "match[]"'),
        ("/api/v1/label/bad-name/values", {}, 'invalid label name: "bad-name"'),
    ],
)
def test_metadata_errors(served: Served, path: str, params: dict[str, str], message: str) -> None:
    r = served.http.get(path, params=params)
    assert r.status_code == 400
    assert r.json()["status"] == "error"
    assert r.json()["errorType"] == "bad_data"
    assert message in r.json()["error"]


def test_buildinfo_and_empty_views(served: Served) -> None:
    info = served.http.get("/api/v1/status/buildinfo").json()["data"]
    assert set(info) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert served.http.get("/api/v1/rules").json() == {"status": "success", "data": {"groups": []}}
    assert served.http.get("/api/v1/alerts").json()["data"] == {"alerts": []}
    targets = served.http.get("/api/v1/targets").json()["data"]
    assert targets == {"activeTargets": [], "droppedTargets": []}


def test_health_and_readiness(served: Served) -> None:
    assert served.http.get("/-/healthy").status_code == 200
    assert served.http.get("/-/ready").status_code == 200
    served.ctx.ready = lambda: False
    assert served.http.get("/-/ready").status_code == 503


def test_reads_can_require_a_token(tmp_path: Path, clock: SimulatedClock) -> None:
    with serve(tmp_path, clock, storage=_storage(), reads="token") as s:
        r = s.http.get("/api/v1/query", params={"query": "up"})
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        r = s.http.get("/api/v1/query", params={"query": "up"}, headers=bearer("wrong" * 5))
        assert r.status_code == 401
        r = s.http.get("/api/v1/query", params={"query": "up"}, headers=bearer(ADMIN))
        assert r.status_code == 200


def test_form_body_past_the_limit_is_413(tmp_path: Path, clock: SimulatedClock) -> None:
    from soulwatch.config import ApiConfig

    with serve(tmp_path, clock, api=ApiConfig(max_body_bytes=2048)) as s:
        r = s.http.post("/api/v1/query", data={"query": "up" + " " * 4000})
        assert r.status_code == 413


class _BrokenEngine:
    """An engine with a bug: the API must still answer in Prometheus's error shape."""

    def instant(self, query: object, t_ms: int, *, cancel: object = None) -> None:
        raise RuntimeError("bug")

    def range(
        self, query: object, start_ms: int, end_ms: int, step_ms: int, *, cancel: object = None
    ) -> None:
        raise RuntimeError("bug")


def test_an_engine_bug_is_a_500_in_prometheus_shape(served: Served) -> None:
    served.ctx.engine = _BrokenEngine()  # type: ignore[assignment]
    r = served.http.get("/api/v1/query", params={"query": "up"})
    assert r.status_code == 500
    assert r.json() == {"status": "error", "errorType": "internal", "error": "internal error"}


def test_limits_answer_as_prometheus_does(served: Served) -> None:
    from soulwatch.promql.engine import Engine

    storage = served.ctx.storage
    served.ctx.engine = Engine(storage, timeout_s=0.0, max_samples=10**9)
    r = served.http.get("/api/v1/query", params={"query": "sum(rate(up[10m]))", "time": T0})
    assert r.status_code == 503
    assert r.json()["errorType"] == "timeout"
    served.ctx.engine = Engine(storage, max_samples=5)
    r = served.http.get("/api/v1/query", params={"query": "sum(rate(up[10m]))", "time": T0})
    assert r.status_code == 422
    assert r.json()["errorType"] == "execution"
