"""Prometheus 2.42 and `soulwatch run` on one prometheus.yml: the status, metadata,
format_query and federation endpoints answer alike.

Both are started from the same directory with the same relative config
path, scrape the same exporter (with ``# TYPE``, ``# HELP`` and ``# UNIT``)
and evaluate the same rule file. Each endpoint is then asked of both and
compared in structure and in the values that do not depend on the process
(paths, settings, metadata, series counts, label sets).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import Recorder, Reply, wait_until
from tests.peers import prometheus_peer, soulwatch_peer

pytestmark = pytest.mark.slow

EXPOSITION = """\
# HELP jobs_processed_total Jobs processed, by outcome.
# TYPE jobs_processed_total counter
jobs_processed_total{outcome="ok"} 17
jobs_processed_total{outcome="failed"} 2
# HELP queue_depth Items waiting in the queue.
# TYPE queue_depth gauge
queue_depth 1234567
# HELP job_seconds How long a job takes.
# TYPE job_seconds histogram
job_seconds_bucket{le="1"} 3
job_seconds_bucket{le="10"} 9
job_seconds_bucket{le="+Inf"} 19
job_seconds_sum 57.5
job_seconds_count 19
# HELP temp_celsius A temperature\\nwith a newline and a backslash \\\\.
# TYPE temp_celsius untyped
temp_celsius{room="a b"} -3.25
"""

RULES = """\
groups:
  - name: demo
    interval: 1s
    rules:
      - record: job:jobs_processed:sum
        expr: sum by (job) (jobs_processed_total)
      - alert: QueueDeep
        expr: queue_depth > 1000
        for: 1h
"""

FORMAT_QUERIES = [
    'sum(rate(x{a="b"}[5m]))by(job)',
    "a+on(x)group_left(y)-b",
    "x @ 100 offset -5m",
    "topk(3,y)without(z)",
    "(a)[5m:1m] offset 1h",
    "a > bool 1e6",
    'x{b=~"c.*",a!="d"}',
    "-1 + +2",
    "rate(http_requests_total[5m] @ end())",
    'label_replace(up, "dst", "$1", "src", "(.*)")',
    "histogram_quantile(0.95, sum by (le, job, instance, handler) "
    '(rate(http_request_duration_seconds_bucket{job="backend",handler!~"/health|/metrics"}[5m])))'
    " > 2 and on (job) sum by (job) (rate(http_requests_total[5m])) > 0.1",
    "sum by (job) (rate(some_extremely_long_metric_name_for_testing_total[5m])) / "
    "sum by (job) (rate(another_extremely_long_metric_name_total[5m]))",
]


def _data(base: str, path: str, **params: Any) -> Any:
    r = httpx.get(base + path, params=params, timeout=10)
    body = r.json()
    assert body["status"] == "success", (path, body)
    return body["data"]


def _scraped_and_evaluated(base: str) -> bool:
    targets = _data(base, "/api/v1/targets")["activeTargets"]
    rules = _data(base, "/api/v1/rules")["groups"]
    series = _data(base, "/api/v1/series", **{"match[]": "job:jobs_processed:sum"})
    return bool(targets and targets[0]["health"] == "up" and rules and series)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    workdir = tmp_path_factory.mktemp("apicompat")
    (workdir / "rules.yml").write_text(RULES)
    reply = Reply(
        body=EXPOSITION.encode(),
        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
    )
    with Recorder(default=reply) as exporter:
        (workdir / "prometheus.yml").write_text(
            textwrap.dedent(
                f"""\
                global:
                  scrape_interval: 1s
                  scrape_timeout: 500ms
                  evaluation_interval: 1s
                  external_labels:
                    site: lab
                rule_files:
                  - rules.yml
                scrape_configs:
                  - job_name: exporter
                    basic_auth:
                      username: scraper
                      password: hunter2-very-secret
                    static_configs:
                      - targets: ["127.0.0.1:{exporter.port}"]
                """
            )
        )
        with (
            prometheus_peer("prometheus.yml", workdir / "prom", cwd=workdir) as prom,
            soulwatch_peer("prometheus.yml", data_dir=workdir / "sw", cwd=workdir) as sw,
        ):
            wait_until(lambda: _scraped_and_evaluated(prom), timeout=30, what="prometheus ready")
            wait_until(lambda: _scraped_and_evaluated(sw), timeout=30, what="soulwatch ready")
            yield prom, sw


def test_root_answers_as_a_liveness_check_like_prometheus(peers: tuple[str, str]) -> None:
    # Prometheus redirects its root to its UI; soulwatch's root is its console.
    # A client following redirects gets a 200 page from both.
    prom, sw = peers
    theirs = httpx.get(prom + "/", timeout=10, follow_redirects=True)
    ours = httpx.get(sw + "/", timeout=10, follow_redirects=True)
    assert theirs.status_code == ours.status_code == 200
    assert theirs.headers["content-type"].startswith("text/html")
    assert ours.headers["content-type"].startswith("text/html")


def test_status_config_shows_the_same_settings_with_secrets_hidden(
    peers: tuple[str, str],
) -> None:
    prom, sw = peers
    theirs = yaml.safe_load(_data(prom, "/api/v1/status/config")["yaml"])
    ours_text = _data(sw, "/api/v1/status/config")["yaml"]
    ours = yaml.safe_load(ours_text)
    assert "hunter2" not in ours_text
    [tjob], [ojob] = theirs["scrape_configs"], ours["scrape_configs"]
    assert (
        ojob["basic_auth"]
        == tjob["basic_auth"]
        == {
            "username": "scraper",
            "password": "<secret>",
        }
    )
    for key in ("job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme"):
        assert ojob[key] == tjob[key], key
    assert ojob["static_configs"][0]["targets"] == tjob["static_configs"][0]["targets"]
    assert ours["rule_files"] == theirs["rule_files"] == ["rules.yml"]
    for key in ("scrape_interval", "scrape_timeout", "evaluation_interval", "external_labels"):
        assert ours["global"][key] == theirs["global"][key], key


def test_status_flags_name_the_same_settings(peers: tuple[str, str]) -> None:
    prom, sw = peers
    theirs, ours = _data(prom, "/api/v1/status/flags"), _data(sw, "/api/v1/status/flags")
    assert all(isinstance(v, str) for v in ours.values())
    for key in (
        "config.file",
        "query.timeout",
        "query.lookback-delta",
        "rules.alert.resend-delay",
        "alertmanager.notification-queue-capacity",
    ):
        assert ours[key] == theirs[key], key
    assert set(ours) <= set(theirs)


def test_status_runtimeinfo_has_prometheus_keys_and_facts(peers: tuple[str, str]) -> None:
    prom, sw = peers
    theirs, ours = (
        _data(prom, "/api/v1/status/runtimeinfo"),
        _data(sw, "/api/v1/status/runtimeinfo"),
    )
    assert set(ours) == set(theirs)
    assert {k: type(v) for k, v in ours.items()} == {k: type(v) for k, v in theirs.items()}
    for key in ("CWD", "reloadConfigSuccess", "storageRetention"):
        assert ours[key] == theirs[key], key


def test_status_tsdb_counts_the_same_series(peers: tuple[str, str]) -> None:
    prom, sw = peers
    theirs, ours = _data(prom, "/api/v1/status/tsdb"), _data(sw, "/api/v1/status/tsdb")
    assert set(ours) == set(theirs)
    assert set(ours["headStats"]) == set(theirs["headStats"])

    def counts(data: Any, key: str) -> dict[str, int]:
        return {item["name"]: item["value"] for item in data[key]}

    # The exporter's families and the label pairs they share are counted alike.
    tnames, onames = (
        counts(theirs, "seriesCountByMetricName"),
        counts(ours, "seriesCountByMetricName"),
    )
    for name in ("job_seconds_bucket", "jobs_processed_total"):
        assert onames[name] == tnames[name], name
    tpairs = counts(theirs, "seriesCountByLabelValuePair")
    opairs = counts(ours, "seriesCountByLabelValuePair")
    assert opairs["job=exporter"] == tpairs["job=exporter"]
    assert ours["headStats"]["minTime"] <= ours["headStats"]["maxTime"]


@pytest.mark.parametrize("query", FORMAT_QUERIES)
def test_format_query_writes_what_prometheus_writes(peers: tuple[str, str], query: str) -> None:
    prom, sw = peers
    theirs = _data(prom, "/api/v1/format_query", query=query)
    assert _data(sw, "/api/v1/format_query", query=query) == theirs


def test_format_query_error(peers: tuple[str, str]) -> None:
    prom, sw = peers
    theirs = httpx.get(prom + "/api/v1/format_query", params={"query": "sum("}, timeout=10)
    ours = httpx.get(sw + "/api/v1/format_query", params={"query": "sum("}, timeout=10)
    assert ours.status_code == theirs.status_code == 400
    assert ours.json()["errorType"] == theirs.json()["errorType"]
    assert ours.json()["error"].startswith('invalid parameter "query": ')


def test_metadata_is_what_the_exporter_declared(peers: tuple[str, str]) -> None:
    prom, sw = peers
    theirs, ours = _data(prom, "/api/v1/metadata"), _data(sw, "/api/v1/metadata")
    assert ours == theirs
    assert ours["temp_celsius"] == [
        {"type": "unknown", "help": "A temperature\nwith a newline and a backslash \\.", "unit": ""}
    ]
    one = {"metric": "queue_depth"}
    assert _data(sw, "/api/v1/metadata", **one) == _data(prom, "/api/v1/metadata", **one)
    assert len(_data(sw, "/api/v1/metadata", limit=2)) == 2


def test_targets_metadata_matches(peers: tuple[str, str]) -> None:
    prom, sw = peers
    key = lambda item: item["metric"]  # noqa: E731
    params = {"match_target": '{job="exporter"}'}
    theirs = sorted(_data(prom, "/api/v1/targets/metadata", **params), key=key)
    ours = sorted(_data(sw, "/api/v1/targets/metadata", **params), key=key)
    assert ours == theirs
    assert len(ours) == 4
    params = {"metric": "job_seconds"}
    assert _data(sw, "/api/v1/targets/metadata", **params) == _data(
        prom, "/api/v1/targets/metadata", **params
    )
    params = {"match_target": '{job="nope"}'}
    assert _data(sw, "/api/v1/targets/metadata", **params) == []
    bad = {"match_target": "{job="}
    theirs_r = httpx.get(prom + "/api/v1/targets/metadata", params=bad, timeout=10)
    ours_r = httpx.get(sw + "/api/v1/targets/metadata", params=bad, timeout=10)
    assert ours_r.status_code == theirs_r.status_code == 400
    assert ours_r.json()["error"].startswith('invalid parameter "match_target": ')


def test_rules_show_file_and_numbers_as_prometheus_does(peers: tuple[str, str]) -> None:
    prom, sw = peers
    [tg], [og] = _data(prom, "/api/v1/rules")["groups"], _data(sw, "/api/v1/rules")["groups"]
    assert og["file"] == tg["file"] == "rules.yml"
    assert og["interval"] == tg["interval"] == 1
    assert isinstance(og["interval"], int)
    talert = next(r for r in tg["rules"] if r["type"] == "alerting")
    oalert = next(r for r in og["rules"] if r["type"] == "alerting")
    assert oalert["duration"] == talert["duration"] == 3600
    assert isinstance(oalert["duration"], int)


ERROR_CALLS = [
    ("/api/v1/query_range", {"query": "up", "start": 100, "end": 50, "step": 15}),
    ("/api/v1/query_range", {"query": "up", "start": 100, "end": 200, "step": 0}),
    ("/api/v1/query_range", {"query": "up[5m]", "start": 100, "end": 200, "step": 15}),
    ("/api/v1/query_range", {"query": '"text"', "start": 100, "end": 200, "step": 15}),
    ("/api/v1/query_range", {"query": "up", "start": "x", "end": 200, "step": 15}),
    ("/api/v1/query_range", {"query": "up", "start": 100, "end": "y", "step": 15}),
    ("/api/v1/query", {"query": "up", "time": "soon"}),
    ("/api/v1/series", {"match[]": "up", "start": 200, "end": 100}),
    ("/api/v1/labels", {"start": 200, "end": 100}),
    ("/api/v1/label/job/values", {"start": 200, "end": 100}),
    ("/api/v1/labels", {"start": "zz"}),
    ("/api/v1/label/job/values", {"end": "zz"}),
    ("/api/v1/rules", {"type": "bogus"}),
    ("/api/v1/query_exemplars", {"query": "up", "start": "x"}),
    ("/api/v1/metadata", {"limit": "x"}),
    ("/api/v1/targets/metadata", {"limit": "x"}),
]


@pytest.mark.parametrize("call", ERROR_CALLS, ids=[str(c[1]) for c in ERROR_CALLS])
def test_errors_read_as_prometheus_writes_them(
    peers: tuple[str, str], call: tuple[str, dict[str, Any]]
) -> None:
    prom, sw = peers
    path, params = call
    theirs = httpx.get(prom + path, params=params, timeout=10)
    ours = httpx.get(sw + path, params=params, timeout=10)
    assert ours.status_code == theirs.status_code, (ours.text, theirs.text)
    assert ours.json() == theirs.json()


def test_empty_range_vector_result_is_a_matrix(peers: tuple[str, str]) -> None:
    prom, sw = peers
    params = {"query": "no_such_metric[5m]"}
    assert _data(sw, "/api/v1/query", **params) == _data(prom, "/api/v1/query", **params)
    assert _data(sw, "/api/v1/query", **params) == {"resultType": "matrix", "result": []}


def _federated(text: str) -> tuple[list[str], set[str]]:
    """The ``# TYPE`` lines in order and each sample's series text (no value or time)."""
    types = [line for line in text.splitlines() if line.startswith("# TYPE")]
    series = {line.rsplit(" ", 2)[0] for line in text.splitlines() if not line.startswith("#")}
    return types, series


def test_federate_writes_the_same_families_and_series(peers: tuple[str, str]) -> None:
    prom, sw = peers
    params = [("match[]", '{job="exporter"}'), ("match[]", "job:jobs_processed:sum")]
    theirs = httpx.get(prom + "/federate", params=params, timeout=10)
    ours = httpx.get(sw + "/federate", params=params, timeout=10)
    assert ours.status_code == theirs.status_code == 200
    assert ours.headers["content-type"] == theirs.headers["content-type"]
    assert _federated(ours.text) == _federated(theirs.text)
    assert "queue_depth{" in ours.text
    assert " 1.234567e+06 " in ours.text
    bad = httpx.get(sw + "/federate", params={"match[]": "{"}, timeout=10)
    assert bad.status_code == httpx.get(prom + "/federate", params={"match[]": "{"}).status_code


def test_a_real_prometheus_federates_from_soulwatch(peers: tuple[str, str], tmp_path: Path) -> None:
    _, sw = peers
    config = tmp_path / "federating.yml"
    config.write_text(
        textwrap.dedent(
            f"""\
            global:
              scrape_interval: 1s
              scrape_timeout: 500ms
            scrape_configs:
              - job_name: federate
                honor_labels: true
                metrics_path: /federate
                params:
                  'match[]': ['{{job="exporter"}}']
                static_configs:
                  - targets: ["{sw.removeprefix("http://")}"]
            """
        )
    )
    with prometheus_peer(config, tmp_path / "data") as base:

        def federated() -> list[Any]:
            result: list[Any] = _data(base, "/api/v1/query", query="queue_depth")["result"]
            return result

        [sample] = wait_until(federated, timeout=30, what="federated queue_depth")
        assert sample["metric"] == {
            "__name__": "queue_depth",
            "job": "exporter",
            "instance": sample["metric"]["instance"],
            "site": "lab",
        }
        assert sample["value"][1] == "1234567"
        [target] = _data(base, "/api/v1/targets")["activeTargets"]
        assert target["health"] == "up", target["lastError"]
