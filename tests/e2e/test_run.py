"""`soulwatch run` end to end: a real instrumented app, scraped and probed; heartbeats; a page.

soulwatch runs as a subprocess with 1 s scrape and evaluation intervals. The
watched app is a real uvicorn server instrumented with the SDK; its heartbeat
client pings soulwatch; a webhook receiver (a recording HTTP server) stands in
for the pager. Stopping the app must take its alert from pending to firing and
page; restarting it must resolve the alert and the page.
"""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from soulwatch.instrument import Heartbeat, instrument
from tests.helpers import Recorder, UvicornThread, free_port, wait_until
from tests.peers import pager_alerting, pages, soulwatch_peer

pytestmark = pytest.mark.slow

CHECK = str(uuid.uuid4())
ADMIN = "e2e-admin-token-0123456789"


def _app() -> Starlette:
    async def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/hello", hello)])
    instrument(app, service="shop", registry=CollectorRegistry())
    return app


def _config(tmp_path: Path, app_port: int, listen: int, hook: str) -> Path:
    (tmp_path / "rules.yml").write_text(
        textwrap.dedent(
            """\
            groups:
              - name: app
                rules:
                  - alert: AppDown
                    expr: up{job="shop"} == 0
                    for: 3s
                    labels: {severity: page}
                    annotations:
                      summary: "{{ $labels.instance }} is down"
            """
        )
    )
    config = tmp_path / "soulwatch.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            listen: 127.0.0.1:{listen}
            data_dir: data
            global:
              scrape_interval: 1s
              scrape_timeout: 1s
              evaluation_interval: 1s
            rule_files: [rules.yml]
            scrape_configs:
              - job_name: shop
                static_configs:
                  - targets: ["127.0.0.1:{app_port}"]
            probes:
              - job_name: shop-health
                prober: http
                targets: ["http://127.0.0.1:{app_port}/health"]
                interval: 1s
                timeout: 1s
            heartbeats:
              checks:
                - name: shop-loop
                  uuid: {CHECK}
                  period: 30s
                  grace: 30s
            auth:
              tokens:
                - name: ops
                  token_env: E2E_ADMIN
                  scopes: [admin]
            """
        )
        + pager_alerting(hook)
    )
    return config


def _query(api: httpx.Client, expr: str) -> list[dict[str, Any]]:
    body = api.get("/api/v1/query", params={"query": expr}).json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def _alert_states(api: httpx.Client) -> set[str]:
    alerts = api.get("/api/v1/alerts").json()["data"]["alerts"]
    return {a["state"] for a in alerts if a["labels"]["alertname"] == "AppDown"}


def test_run_scrapes_alerts_pages_and_recovers(tmp_path: Path) -> None:
    app = _app()
    app_port = free_port()
    listen = free_port()
    base = f"http://127.0.0.1:{listen}"
    with Recorder() as hook:
        config = _config(tmp_path, app_port, listen, hook.url)
        server = UvicornThread(app, port=app_port).start()
        try:
            with (
                soulwatch_peer(config, port=listen, env={"E2E_ADMIN": ADMIN}),
                httpx.Client(base_url=base, timeout=10) as api,
            ):
                # The SDK's heartbeat client against the ping endpoint.
                beat = Heartbeat(f"{base}/ping/{CHECK}", registry=CollectorRegistry())
                with beat.run():  # start, then success with the run's duration
                    assert httpx.get(f"{server.url}/hello").text == "hello"
                status = api.get("/api/v1/heartbeats/shop-loop").json()
                assert status["status"] == "up"
                assert status["last_duration"] is not None

                # Series, targets, heartbeat metrics.
                wait_until(lambda: _query(api, 'up{job="shop"} == 1'), timeout=20, what="up=1")
                httpx.get(f"http://127.0.0.1:{app_port}/hello")
                series = api.get("/api/v1/series", params={"match[]": '{job="shop"}'}).json()
                names = {s["__name__"] for s in series["data"]}
                assert {"up", "scrape_duration_seconds"} <= names
                assert any(n.startswith("http_") for n in names), names
                [target] = api.get("/api/v1/targets").json()["data"]["activeTargets"]
                assert target["health"] == "up"
                assert target["labels"]["job"] == "shop"
                wait_until(
                    lambda: _query(api, 'probe_success{job="shop-health"} == 1'),
                    timeout=20,
                    what="the /health probe",
                )
                [probe] = api.get("/api/v1/probes").json()["probes"]
                assert probe["health"] == "up"
                wait_until(
                    lambda: _query(api, 'heartbeat_up{check="shop-loop"} == 1'),
                    timeout=20,
                    what="heartbeat_up",
                )

                # The app stops: pending, then firing, then a page.
                server.stop()
                wait_until(lambda: "pending" in _alert_states(api), timeout=20, what="pending")
                wait_until(lambda: "firing" in _alert_states(api), timeout=20, what="firing")
                wait_until(lambda: pages(hook, "AppDown", "firing"), timeout=20, what="the page")
                [target] = api.get("/api/v1/targets").json()["data"]["activeTargets"]
                assert target["health"] == "down"
                assert target["lastError"]
                wait_until(
                    lambda: _query(api, 'probe_success{job="shop-health"} == 0'),
                    timeout=20,
                    what="the failing probe",
                )
                [probe] = api.get("/api/v1/probes").json()["probes"]
                assert probe["health"] == "down"
                assert probe["lastError"]
                page = pages(hook, "AppDown", "firing")[0]
                assert page["alerts"][0]["annotations"]["summary"] == (
                    f"127.0.0.1:{app_port} is down"
                )
                rules = api.get("/api/v1/rules").json()["data"]["groups"][0]["rules"]
                assert rules[0]["state"] == "firing"

                # The app comes back: everything returns to normal.
                server = UvicornThread(app, port=app_port).start()
                wait_until(lambda: _query(api, 'up{job="shop"} == 1'), timeout=20, what="up")
                wait_until(lambda: not _alert_states(api), timeout=20, what="no alert")
                wait_until(
                    lambda: _query(api, 'probe_success{job="shop-health"} == 1'),
                    timeout=20,
                    what="the probe back up",
                )
                wait_until(
                    lambda: pages(hook, "AppDown", "resolved"), timeout=20, what="resolved page"
                )
                history = api.get("/api/v1/alerts/history").json()["history"]
                moves = [(h["from"], h["to"]) for h in history if h["alertname"] == "AppDown"]
                assert ("pending", "firing") in moves
                assert ("firing", "inactive") in moves
                assert api.get("/health").json()["status"] == "ok"
        finally:
            server.stop()
