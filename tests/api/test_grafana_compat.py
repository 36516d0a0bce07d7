"""The Grafana data-source check: soulwatch and a real Prometheus answer the same calls alike.

Both hold the same samples (Prometheus backfilled with promtool). A fixed
list of the calls Grafana's Prometheus data source makes — instant and range
queries (errors included), series, labels, label values — goes to both; the
responses must match in status code, structure and error type, and in values
within float tolerance. Query times fall between samples, so the Prometheus 2
(closed) and 3 (left-open) range boundaries select the same samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.memory import MemoryStorage
from tests.api.prometheus_peer import dataset, prometheus_with
from tests.api.support import serve

pytestmark = pytest.mark.slow

END = (int(time.time()) // 3600) * 3600 - 600
T = END - 7  # between two samples
START = END - 1800 - 7

Call = tuple[str, str, dict[str, Any] | list[tuple[str, Any]]]

CALLS: list[Call] = [
    # Grafana's "Save & test".
    ("GET", "/api/v1/query", {"query": "1+1", "time": T}),
    ("GET", "/api/v1/status/buildinfo", {}),
    ("GET", "/api/v1/query", {"query": "http_requests_total", "time": T}),
    ("POST", "/api/v1/query", {"query": 'http_requests_total{code="500"}', "time": T}),
    ("GET", "/api/v1/query", {"query": "sum by (code) (rate(http_requests_total[5m]))", "time": T}),
    ("GET", "/api/v1/query", {"query": "increase(http_requests_total[10m])", "time": T}),
    (
        "GET",
        "/api/v1/query",
        {
            "query": "histogram_quantile(0.9, sum by (le, job) "
            "(rate(http_request_duration_seconds_bucket[5m])))",
            "time": T,
        },
    ),
    ("GET", "/api/v1/query", {"query": "temperature_celsius > 20", "time": T}),
    ("GET", "/api/v1/query", {"query": "avg_over_time(temperature_celsius[15m])", "time": T}),
    ("GET", "/api/v1/query", {"query": "scalar(sum(temperature_celsius))", "time": T}),
    ("GET", "/api/v1/query", {"query": 'count by (job) ({__name__=~"http_.*"})', "time": T}),
    ("GET", "/api/v1/query", {"query": "topk(2, temperature_celsius)", "time": T}),
    ("GET", "/api/v1/query", {"query": "http_requests_total[1m]", "time": T}),
    ("GET", "/api/v1/query", {"query": "nonexistent_metric", "time": T}),
    ("GET", "/api/v1/query", {"query": '"a string"', "time": T}),
    # Errors.
    ("GET", "/api/v1/query", {"query": "sum(", "time": T}),
    ("GET", "/api/v1/query", {"query": "rate(temperature_celsius)", "time": T}),
    ("GET", "/api/v1/query", {"query": "up", "time": "not-a-time"}),
    ("GET", "/api/v1/query_range", {"query": "up", "start": T, "end": T - 60, "step": 15}),
    ("GET", "/api/v1/query_range", {"query": "up", "start": START, "end": T, "step": 0}),
    ("GET", "/api/v1/query_range", {"query": "up", "start": START, "end": T, "step": 0.01}),
    ("GET", "/api/v1/query_range", {"query": "up", "end": T, "step": 15}),
    # Range queries as a dashboard panel makes them.
    (
        "GET",
        "/api/v1/query_range",
        {"query": "rate(http_requests_total[1m])", "start": START, "end": T, "step": 60},
    ),
    (
        "POST",
        "/api/v1/query_range",
        {"query": "avg by (job) (temperature_celsius)", "start": START, "end": T, "step": "30s"},
    ),
    (
        "GET",
        "/api/v1/query_range",
        {"query": "sum(http_requests_total) / 10", "start": START, "end": T, "step": 120},
    ),
    ("GET", "/api/v1/query_range", {"query": "vector(1)", "start": START, "end": T, "step": 300}),
    # Metadata: the query editor's metric and label browsers.
    (
        "GET",
        "/api/v1/series",
        [("match[]", "http_requests_total"), ("start", START), ("end", T)],
    ),
    ("POST", "/api/v1/series", [("match[]", '{job="web"}'), ("start", START), ("end", T)]),
    (
        "GET",
        "/api/v1/series",
        [
            ("match[]", 'temperature_celsius{instance="a:1"}'),
            ("match[]", 'http_requests_total{code="500",job="web"}'),
        ],
    ),
    ("GET", "/api/v1/series", {}),
    ("GET", "/api/v1/labels", {"start": START, "end": T}),
    ("GET", "/api/v1/labels", [("match[]", "temperature_celsius")]),
    ("GET", "/api/v1/label/__name__/values", {"start": START, "end": T}),
    ("GET", "/api/v1/label/job/values", {}),
    ("GET", "/api/v1/label/le/values", [("match[]", "http_request_duration_seconds_bucket")]),
    ("GET", "/api/v1/label/nope/values", {}),
]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("compat")
    text, samples = dataset(END)
    storage = MemoryStorage()
    for labels, t_ms, value in samples:
        storage.add(labels, t_ms, value)
    clock = SimulatedClock(start=float(T))
    with prometheus_with(text, workdir) as prom, serve(workdir, clock, storage=storage) as sw:
        yield prom, sw.url


def _call(base: str, call: Call) -> httpx.Response:
    method, path, params = call
    if method == "POST":
        items = params.items() if isinstance(params, dict) else params
        body = urlencode(list(items))
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        return httpx.post(base + path, content=body, headers=headers, timeout=30)
    return httpx.get(base + path, params=params, timeout=30)


def _close(a: str, b: str) -> bool:
    fa, fb = float(a), float(b)
    if math.isnan(fa) or math.isnan(fb):
        return math.isnan(fa) and math.isnan(fb)
    return math.isclose(fa, fb, rel_tol=1e-9, abs_tol=1e-12)


def _same_points(ours: list[Any], theirs: list[Any], where: str) -> None:
    assert len(ours) == len(theirs), where
    for (t1, v1), (t2, v2) in zip(ours, theirs, strict=True):
        assert t1 == t2, where
        assert _close(v1, v2), f"{where}: {v1} != {v2} at {t1}"


def _same_data(ours: Any, theirs: Any, where: str) -> None:
    if isinstance(theirs, dict) and "resultType" in theirs:
        assert ours["resultType"] == theirs["resultType"], where
        kind = theirs["resultType"]
        if kind in ("scalar", "string"):
            assert ours["result"][0] == theirs["result"][0], where
            if kind == "scalar":
                assert _close(ours["result"][1], theirs["result"][1]), where
            else:
                assert ours["result"][1] == theirs["result"][1], where
            return
        key = lambda item: sorted(item["metric"].items())  # noqa: E731
        mine, peer = sorted(ours["result"], key=key), sorted(theirs["result"], key=key)
        assert [m["metric"] for m in mine] == [p["metric"] for p in peer], where
        for m, p in zip(mine, peer, strict=True):
            if kind == "vector":
                _same_points([m["value"]], [p["value"]], where)
            else:
                _same_points(m["values"], p["values"], where)
        return
    if isinstance(theirs, list):
        assert sorted(map(repr, ours)) == sorted(map(repr, theirs)), where
        return
    assert set(ours) == set(theirs), where


@pytest.mark.parametrize("call", CALLS, ids=[f"{c[0]} {c[1]} {c[2]}"[:90] for c in CALLS])
def test_same_answer_as_prometheus(peers: tuple[str, str], call: Call) -> None:
    prom, ours = peers
    theirs_r, ours_r = _call(prom, call), _call(ours, call)
    where = f"{call}: prometheus={theirs_r.text[:300]} soulwatch={ours_r.text[:300]}"
    assert ours_r.status_code == theirs_r.status_code, where
    theirs, mine = theirs_r.json(), ours_r.json()
    assert mine["status"] == theirs["status"], where
    if theirs["status"] == "error":
        assert mine["errorType"] == theirs["errorType"], where
        assert set(mine) >= {"status", "errorType", "error"}, where
        return
    _same_data(mine["data"], theirs["data"], where)
