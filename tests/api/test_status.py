"""``/api/v1/status/*``, ``format_query`` and ``/federate`` over real uvicorn (no peer)."""

from __future__ import annotations

from pathlib import Path

import yaml

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels
from tests.api.support import serve

CONFIG = """\
global:
  scrape_interval: 15s
  scrape_timeout: 10s
scrape_configs:
  - job_name: app
    headers: {X-Api-Key: key-in-a-header-SECRET}
    static_configs: [{targets: ["127.0.0.1:1"]}]
collectors:
  soulcaster:
    redis_url: redis://:pw-in-url-SECRET@127.0.0.1:6379/0
auth:
  tokens:
    - name: ops
      token: a-long-admin-token-0123456789
      scopes: [admin]
alerting:
  route:
    receiver: pager
  receivers:
    - name: pager
      pagerduty_configs:
        - routing_key: pd-routing-key-0123456789
      slack_configs:
        - api_url: https://hooks.slack.example/services/T000/B000/XXXXSECRET
          channel: '#ops'
      webhook_configs:
        - url: https://hooks.example/token-in-path-SECRET
"""


def test_config_hides_every_secret(tmp_path: Path, clock: SimulatedClock) -> None:
    config = parse_config(CONFIG)
    with serve(tmp_path, clock, config=config) as served:
        body = served.http.get("/api/v1/status/config").json()
    text = body["data"]["yaml"]
    for secret in ("0123456789", "XXXXSECRET", "SECRET"):
        assert secret not in text
    data = yaml.safe_load(text)
    [receiver] = data["alerting"]["receivers"]
    assert receiver["pagerduty_configs"] == [{"routing_key": "<secret>"}]
    assert receiver["slack_configs"] == [{"api_url": "<secret>", "channel": "#ops"}]
    assert receiver["webhook_configs"] == [{"url": "<secret>"}]
    assert data["auth"]["tokens"][0]["token"] == "<secret>"
    assert data["global"]["scrape_interval"] == "15s"
    assert data["scrape_configs"][0]["headers"] == {"X-Api-Key": "<secret>"}
    assert data["collectors"]["soulcaster"]["redis_url"] == "<secret>"


def test_root_answers_with_the_console(tmp_path: Path, clock: SimulatedClock) -> None:
    # Clients use the root as a liveness check: it answers 200, with the console.
    with serve(tmp_path, clock) as served:
        r = served.http.get("/")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")


def test_federate_skips_stale_and_old_series(tmp_path: Path, clock: SimulatedClock) -> None:
    now_ms = int(clock.time() * 1000)
    storage = MemoryStorage()
    fresh = Labels.of(__name__="up", job="api", instance="a:1")
    stale = Labels.of(__name__="up", job="api", instance="a:2")
    old = Labels.of(__name__="up", job="api", instance="a:3")
    storage.add(fresh, now_ms - 20_000, 0.0)
    storage.add(fresh, now_ms - 5_000, 1.0)
    storage.add(stale, now_ms - 20_000, 1.0)
    storage.add(stale, now_ms - 5_000, STALE_NAN)
    storage.add(old, now_ms - 600_000, 1.0)
    storage.add(Labels.of(__name__="x", q='a"b'), now_ms - 1_000, 2.5e-7)
    with serve(tmp_path, clock, storage=storage, external_labels=(("site", "lab"),)) as served:
        r = served.http.get("/federate", params=[("match[]", "up"), ("match[]", "x")])
    assert r.text == (
        "# TYPE up untyped\n"
        f'up{{instance="a:1",job="api",site="lab"}} 1 {now_ms - 5_000}\n'
        "# TYPE x untyped\n"
        f'x{{q="a\\"b",instance="",site="lab"}} 2.5e-07 {now_ms - 1_000}\n'
    )


def test_tsdb_status_counts(tmp_path: Path, clock: SimulatedClock) -> None:
    now_ms = int(clock.time() * 1000)
    storage = MemoryStorage()
    for i in range(3):
        storage.add(Labels.of(__name__="up", job="api", instance=f"a:{i}"), now_ms - 1000, 1.0)
    storage.add(Labels.of(__name__="down", job="web"), now_ms - 2000, 1.0)
    with serve(tmp_path, clock, storage=storage) as served:
        data = served.http.get("/api/v1/status/tsdb").json()["data"]
        assert served.http.get("/api/v1/status/tsdb", params={"limit": "x"}).status_code == 400
    assert data["headStats"] == {
        "numSeries": 4,
        "numLabelPairs": 7,
        "chunkCount": 4,
        "minTime": now_ms - 2000,
        "maxTime": now_ms - 1000,
    }
    assert data["seriesCountByMetricName"] == [
        {"name": "up", "value": 3},
        {"name": "down", "value": 1},
    ]
    assert data["labelValueCountByLabelName"][0] == {"name": "instance", "value": 3}


def test_a_password_inside_any_url_is_hidden() -> None:
    from soulwatch.api.status import redact

    data = {"remote": {"url": "https://user:pw@example.com/write"}, "plain": "a@b"}
    assert redact(data) == {
        "remote": {"url": "https://user:<secret>@example.com/write"},
        "plain": "a@b",
    }
