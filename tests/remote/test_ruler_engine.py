"""The remote query engine's answers to what a remote says, and ``query.remote``'s config errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.exceptions import ConfigError, EvaluationError, StorageError
from soulwatch.promql.values import Sample, Scalar
from soulwatch.remote.query import RemoteMetadata, RemoteQueryConfig, RemoteQueryEngine, selector
from soulwatch.tsdb.model import Labels, Matcher, MatchType
from tests.api.support import serve
from tests.helpers import Recorder, Reply, free_port

_JSON = {"Content-Type": "application/json"}


@contextlib.contextmanager
def _engine(url: str) -> Iterator[RemoteQueryEngine]:
    engine = RemoteQueryEngine(RemoteQueryConfig(url=url, timeout=2))
    try:
        yield engine
    finally:
        engine.close()


def test_answers_with_the_remotes_vector_at_the_evaluation_time() -> None:
    body = {
        "status": "success",
        "data": {
            "resultType": "vector",
            "result": [{"metric": {"job": "a"}, "value": [1700000000.5, "+Inf"]}],
        },
        "warnings": ["partial"],
    }
    with Recorder(default=Reply(200, json.dumps(body).encode(), _JSON)) as remote:
        with _engine(remote.url) as engine:
            result = engine.instant("up", 1_700_000_000_500)
        sent = remote.received("/api/v1/query")[0]
    assert result.value == [Sample(Labels.of(job="a"), 1_700_000_000_500, float("inf"))]
    assert result.warnings == ["partial"]
    assert b"time=1700000000.500" in sent.body
    assert engine.last_error is None


def test_a_remote_that_cannot_answer_is_a_failing_store_until_it_answers() -> None:
    error = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    with Recorder() as remote:
        remote.replies = [
            Reply(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
            Reply(400, json.dumps(error).encode(), _JSON),
        ]
        with _engine(remote.url) as engine:
            with pytest.raises(StorageError, match="HTTP 502"):
                engine.instant("up", 0)
            assert engine.last_error is not None
            assert "502" in engine.last_error
            # A query the remote refuses is the query's fault: the remote is up.
            with pytest.raises(EvaluationError, match="parse error"):
                engine.instant("up{", 0)
            assert engine.last_error is None
    with _engine(f"http://127.0.0.1:{free_port()}") as refused:
        with pytest.raises(StorageError, match="remote query"):
            refused.range("up", 0, 60_000, 15_000)
        assert refused.last_error is not None
        assert refused.failures == 1


def test_selector_quotes_values_as_promql_does() -> None:
    matchers = [Matcher.equal("__name__", "up"), Matcher(MatchType.REGEX, "job", 'a"b|c')]
    assert selector(matchers) == '{__name__="up",job=~"a\\"b|c"}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query: {remote: {url: 'http://vm:8428'}}\n", "needs a remote_write entry"),
        (
            "query: {remote: {url: 'http://vm:8428/api/v1/query'}}\n"
            "remote_write: [{url: 'http://vm:8428/api/v1/write'}]\n",
            "without /api/v1/query",
        ),
        (
            "query: {remote: {url: 'vm:8428'}}\nremote_write: [{url: 'http://vm/api/v1/write'}]\n",
            "must be an http",
        ),
        (
            "query: {remote: {url: 'http://vm', bearer_token: x, basic_auth: {username: u}}}\n"
            "remote_write: [{url: 'http://vm/api/v1/write'}]\n",
            "at most one of",
        ),
    ],
)
def test_query_remote_config_errors_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(text, "soulwatch.yaml")


def test_sends_the_configured_headers_and_credentials(tmp_path: Path) -> None:
    body = {"status": "success", "data": {"resultType": "scalar", "result": [12.5, "1"]}}
    token = tmp_path / "token"
    token.write_text("mimir-token\n")
    with Recorder(default=Reply(200, json.dumps(body).encode(), _JSON)) as remote:
        config = RemoteQueryConfig(
            url=remote.url + "/prometheus",
            headers={"X-Scope-OrgID": "soulcaster"},
            bearer_token_file=str(token),
        )
        engine = RemoteQueryEngine(config)
        try:
            result = engine.range("vector(1)", 0, 10_000, 5_000)
        finally:
            engine.close()
        sent = remote.received("/prometheus/api/v1/query_range")[0]
    assert result.value == Scalar(12_500, 1.0)
    assert sent.headers["authorization"] == "Bearer mimir-token"
    assert sent.headers["x-scope-orgid"] == "soulcaster"
    assert b"step=5.000" in sent.body


def test_an_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    config = RemoteQueryConfig(url="http://127.0.0.1:9", bearer_token_file=str(tmp_path / "x"))
    with pytest.raises(ConfigError, match=r"query\.remote: cannot read bearer_token_file"):
        RemoteQueryEngine(config)


def test_label_listings_pass_the_remotes_errors_through_and_count_its_outages(
    tmp_path: Path,
) -> None:
    """The API's label and series listings in ruler mode: what the remote was asked,
    its JSON error in Prometheus's shape, and a remote that cannot answer in /health."""
    names = {"status": "success", "data": ["__name__", "job"]}
    refused = {"status": "error", "errorType": "bad_data", "error": "too many series"}
    with Recorder() as remote, _engine(remote.url) as engine:
        remote.replies = [
            Reply(200, json.dumps(names).encode(), _JSON),
            Reply(400, json.dumps(refused).encode(), _JSON),
            Reply(502, b"<html>bad gateway</html>", {"Content-Type": "text/html"}),
        ]
        with serve(tmp_path, SimulatedClock(), index=RemoteMetadata(engine)) as api:
            ok = api.http.get(
                "/api/v1/labels", params={"match[]": 'up{job="a"}', "start": "10", "end": "20"}
            )
            bad = api.http.get("/api/v1/series", params={"match[]": "up"})
            down = api.http.get("/api/v1/label/job/values")
        asked = [r.path for r in remote.received("/api/v1/")]
    assert ok.json() == {"status": "success", "data": ["__name__", "job"]}
    assert asked[0] == "/api/v1/labels?" + urlencode(
        {"match[]": '{__name__="up",job="a"}', "start": "10.000", "end": "20.000"}
    )
    # The series listing with no start or end leaves them to the remote.
    assert asked[1] == "/api/v1/series?" + urlencode({"match[]": '{__name__="up"}'})
    assert (bad.status_code, bad.json()["errorType"]) == (400, "bad_data")
    assert "too many series" in bad.json()["error"]
    assert asked[2] == "/api/v1/label/job/values"
    assert (down.status_code, down.json()["errorType"]) == (500, "internal")
    assert engine.failures == 1
    assert engine.last_error is not None
    assert "502" in engine.last_error
