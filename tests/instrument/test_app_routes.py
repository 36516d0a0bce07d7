"""The app's own endpoints win, and the adoption lines follow the app's own store selection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from soulwatch.instrument import instrument
from tests.helpers import (
    RecordedRequest,
    Recorder,
    Reply,
    UvicornThread,
    free_port,
    started,
    wait_until,
)
from tests.helpers import subprocess_env as _env

REPO = Path(__file__).resolve().parents[2]


def test_a_health_route_of_the_app_is_never_shadowed_by_the_sdk() -> None:
    app = FastAPI()
    sw = instrument(app, service="backend", registry=CollectorRegistry(), configure_logs=False)

    # Declared after instrument(), as the adoption lines allow.
    @app.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "unhealthy"}, status_code=503)

    @app.get("/{name}")
    def by_name(name: str) -> dict[str, str]:
        return {"name": name}

    with UvicornThread(app) as server, httpx.Client(base_url=server.url) as client:
        assert client.get("/health").status_code == 503
        assert client.get("/health").json() == {"status": "unhealthy"}
        # A parametrised route is not the app's /ready or /metrics: the SDK serves those.
        assert client.get("/ready").json()["status"] == "ok"
        assert "http_requests_total" in client.get("/metrics").text
        assert client.get("/other").json() == {"name": "other"}
    assert sw.yielded_paths == frozenset({"/health"})


def test_without_its_own_health_the_app_gets_the_sdks() -> None:
    app = FastAPI()
    instrument(app, service="backend", registry=CollectorRegistry(), configure_logs=False)
    with UvicornThread(app) as server:
        body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok"
    assert body["service"] == "backend"


def _backend(port: int) -> list[str]:
    return [
        sys.executable, "-m", "uvicorn", "tests.soulcaster_app.main:app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip


def _store_env(**store: str) -> dict[str, str]:
    env = _env(**store)
    for name in ("REDIS_URL", "UPSTASH_REDIS_URL", "UPSTASH_REDIS_REST_URL"):
        if name not in store:
            env.pop(name, None)
    return env


def test_importing_the_adopted_backend_without_any_store_variable_does_not_crash() -> None:
    done = subprocess.run(
        [sys.executable, "-c", "import tests.soulcaster_app.main as m; print(type(m.sw).__name__)"],
        env=_store_env(),
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Instrumentation"


@pytest.mark.slow
def test_ready_follows_the_upstash_rest_store_the_app_selected() -> None:
    answers = {"up": True}

    def upstash(request: RecordedRequest) -> Reply:
        if not answers["up"]:
            return Reply(status=503, body=b'{"error":"unavailable"}')
        return Reply(body=json.dumps({"result": "PONG"}).encode())

    with Recorder(handler=upstash) as rest:
        port = free_port()
        env = _store_env(UPSTASH_REDIS_REST_URL=rest.url, UPSTASH_REDIS_REST_TOKEN="rest-token-1")
        url = f"http://127.0.0.1:{port}"
        ready = lambda: httpx.get(f"{url}/", timeout=1).status_code == 200  # noqa: E731
        with started(_backend(port), env=env, cwd=str(REPO), ready=ready, timeout=30):
            assert httpx.get(f"{url}/ready").status_code == 200
            pings = [r for r in rest.received("/") if r.json() == ["PING"]]
            assert pings
            assert pings[-1].headers["authorization"] == "Bearer rest-token-1"

            answers["up"] = False
            # /ready caches a result for a second; then it runs the store's ping again.
            wait_until(lambda: httpx.get(f"{url}/ready").status_code == 503, timeout=10, what="503")
            ready_body = httpx.get(f"{url}/ready").json()
            assert ready_body["status"] == "fail"
            assert "503" in ready_body["failing"]["store"]
            assert httpx.get(f"{url}/health").status_code == 503
