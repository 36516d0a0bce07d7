"""`soulwatch run` facing bad input and holding secrets: what a user and an attacker see.

One real monitor (a subprocess, JSON logs captured) with a receiver and a
probe target whose URLs carry credentials and tokens, a ping key, and CORS
set for one origin. Checked against it:

- the log (httpx's own request lines included) never holds a URL's
  userinfo, query string or webhook key, nor the ping key;
- credentials in a probe URL authenticate the request but never reach the
  ``instance`` label the API and the notifications show;
- a 201-character slug with ``?create=1`` is a clear 400;
- a 100 KB query string is answered 414, not a reset connection;
- CORS headers only for the configured origin, only on pings;
- every link in a notification is absolute and opens something real;
- the data directory is 0700 and everything in it 0600.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import Recorder, free_port, soulwatch_command, subprocess_env, wait_until

pytestmark = pytest.mark.slow

PING_KEY = "pingkey-7c1e0f9a4b2d6e8f"
HOOK_PASSWORD = "hook-pass-93ad"
HOOK_TOKEN = "hook-token-51fe"
PROBE_PASSWORD = "probe-pass-2b7c"
PROBE_TOKEN = "probe-token-c0de"
SECRETS = (PING_KEY, HOOK_PASSWORD, HOOK_TOKEN, PROBE_PASSWORD, PROBE_TOKEN)
ALLOWED_ORIGIN = "https://status.example"


def _config(tmp_path: Path, listen: int, rec: str) -> Path:
    host = rec.removeprefix("http://")
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: Always\n        expr: vector(1)\n"
        "        annotations: {runbook_url: 'docs/runbooks.md#watchdog'}\n"
    )
    config = tmp_path / "soulwatch.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{listen}
            data_dir: data
            global:
              scrape_interval: 1s
              evaluation_interval: 1s
            rule_files: [rules.yml]
            probes:
              - job_name: site
                prober: http
                targets: ["http://watcher:{PROBE_PASSWORD}@{host}/health?token={PROBE_TOKEN}"]
                interval: 1s
                timeout: 1s
            heartbeats:
              ping_key_env: E2E_PING_KEY
              auto_create: true
            api:
              cors_allowed_origins: ["{ALLOWED_ORIGIN}"]
            alerting:
              route:
                receiver: hook
                group_wait: 0s
                group_interval: 1s
                repeat_interval: 1h
              receivers:
                - name: hook
                  webhook_configs:
                    - url: "http://sender:{HOOK_PASSWORD}@{host}/hook?token={HOOK_TOKEN}"
                  slack_configs:
                    - api_url: "{rec}/slack"
            """
        )
    )
    return config


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[tuple[str, Path, Recorder]]:
    listen = free_port()
    base = f"http://127.0.0.1:{listen}"
    log = tmp_path / "soulwatch.log"
    with Recorder() as rec:
        config = _config(tmp_path, listen, rec.url)
        argv = soulwatch_command("run", "-c", str(config), "--log-format", "json")
        env = subprocess_env(E2E_PING_KEY=PING_KEY)
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
            try:
                wait_until(
                    lambda: httpx.get(f"{base}/-/ready", timeout=2).status_code == 200,
                    timeout=30,
                    what="soulwatch ready",
                )
                yield base, tmp_path, rec
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def _raw_get(port: int, target: str) -> bytes:
    """Send a request line in chunks, as a client on a real network does; the answer."""
    request = f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        for i in range(0, len(request), 4096):
            conn.sendall(request[i : i + 4096])
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


def _query(base: str, expr: str) -> list[dict[str, Any]]:
    body = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def test_secrets_stay_out_and_bad_input_gets_clear_answers(
    monitor: tuple[str, Path, Recorder],
) -> None:
    base, tmp_path, rec = monitor
    port = int(base.rsplit(":", 1)[1])

    # A page goes out: httpx logs the request; the receiver got basic auth
    # from the URL's userinfo.
    wait_until(lambda: rec.received("/hook"), timeout=30, what="the page")
    assert rec.received("/hook")[0].headers["authorization"].startswith("Basic ")
    wait_until(lambda: _query(base, "probe_success"), timeout=30, what="a probe sample")
    probes = rec.received("/health")
    assert probes[0].headers["authorization"].startswith("Basic ")
    (sample,) = _query(base, "probe_success")
    host = rec.url.removeprefix("http://")
    assert sample["metric"]["instance"] == f"http://{host}/health?token=..."

    # A slug past the limit, auto-creating: a clear 400, nothing created.
    slug = "s" * 201
    r = httpx.get(f"{base}/ping/{PING_KEY}/{slug}", params={"create": "1"}, timeout=10)
    assert (r.status_code, r.text) == (
        400,
        "invalid url format: a slug has at most 200 characters",
    )
    r = httpx.get(f"{base}/ping/{PING_KEY}/{'s' * 200}", params={"create": "1"}, timeout=10)
    assert (r.status_code, r.text) == (201, "Created")

    # A 100 KB query string: 414, not a reset.
    answer = _raw_get(port, "/api/v1/query?query=up&pad=" + "a" * 100_000)
    assert answer.startswith(b"HTTP/1.1 414 ")
    assert b"URI too long: at most 65536 bytes" in answer
    assert _raw_get(port, "/api/v1/query?query=up&pad=" + "a" * 30_000).startswith(b"HTTP/1.1 200 ")

    # CORS: only the configured origin, only on pings.
    origin = {"Origin": ALLOWED_ORIGIN}
    api = httpx.get(f"{base}/api/v1/query", params={"query": "up"}, headers=origin, timeout=10)
    assert "access-control-allow-origin" not in api.headers
    other = httpx.get(
        f"{base}/ping/{PING_KEY}/x", headers={"Origin": "https://evil.example"}, timeout=10
    )
    assert "access-control-allow-origin" not in other.headers
    ping = httpx.get(f"{base}/ping/{PING_KEY}/{'s' * 200}", headers=origin, timeout=10)
    assert ping.status_code == 200
    assert ping.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    preflight = httpx.options(
        f"{base}/ping/{PING_KEY}/x",
        headers={**origin, "Access-Control-Request-Method": "POST"},
        timeout=10,
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN

    # Permissions of everything the monitor wrote.
    data = tmp_path / "data"
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    files = [Path(root) / f for root, _, names in os.walk(data) for f in names]
    assert any(f.name == "outbox.sqlite" for f in files)
    loose = {str(f.relative_to(data)): oct(stat.S_IMODE(f.stat().st_mode)) for f in files}
    assert {name: mode for name, mode in loose.items() if mode != "0o600"} == {}

    # The log: the delivery is there (httpx's own request lines are kept to
    # warnings), and no secret anywhere.
    log = (tmp_path / "soulwatch.log").read_text()
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any(
        e.get("event") == "notification sent" and e.get("integration") == "hook/slack/0"
        for e in events
    ), log[-2000:]
    for secret in SECRETS:
        assert secret not in log, secret


def test_every_link_in_a_notification_is_absolute_and_answers(
    monitor: tuple[str, Path, Recorder],
) -> None:
    base, _, rec = monitor
    wait_until(lambda: rec.received("/slack") and rec.received("/hook"), timeout=30, what="pages")
    hook = rec.received("/hook")[0].json()
    slack = rec.received("/slack")[0].json()
    (alert,) = hook["alerts"]
    links = {
        "generatorURL": alert["generatorURL"],
        "runbook_url": alert["annotations"]["runbook_url"],
    }
    buttons = next(b for b in slack["blocks"] if b["type"] == "actions")["elements"]
    links.update({f"slack {b['text']['text']}": b["url"] for b in buttons})
    assert links["runbook_url"] == f"{base}/docs/runbooks.md#watchdog"
    assert links["slack Runbook"] == links["runbook_url"]
    assert set(links) == {"generatorURL", "runbook_url", "slack Runbook", "slack Open in soulwatch"}
    for name, url in links.items():
        assert url.startswith(f"{base}/"), name
        # The generator URL is Prometheus's /graph link: the console sends it on to Explore.
        answer = httpx.get(url, timeout=10, follow_redirects=True)
        assert answer.status_code == 200, (name, url, answer.status_code)
        assert str(answer.url).startswith(f"{base}/"), (name, answer.url)
    page = httpx.get(links["runbook_url"], timeout=10)
    assert page.headers["content-type"].startswith("text/html")
    assert '<h2 id="watchdog">Watchdog</h2>' in page.text
    # Explore opens on the alert's expression.
    explore = httpx.get(links["generatorURL"], timeout=10, follow_redirects=True)
    assert explore.headers["content-type"].startswith("text/html")
    assert "vector(1)" in explore.text
