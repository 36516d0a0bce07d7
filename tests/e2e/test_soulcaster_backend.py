"""soulwatch on a backend shaped like Soulcaster's, under real uvicorn with a real redis-server.

The app (tests/soulcaster_app) has Soulcaster's own ``/health`` that answers
503 when its store fails, its ``exception_handler(Exception)`` that logs and
re-raises, and its store selection from the environment; it carries the
adoption lines of docs/soulcaster.md. soulwatch runs as a subprocess probing
that ``/health`` with the preset's ``BackendDown`` rule (its ``for`` cut to
2 s), paging a recording webhook.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml

from soulwatch.presets import soulcaster as preset
from tests.helpers import Recorder, RedisServer, free_port, started, subprocess_env, wait_until
from tests.peers import pager_alerting, pages, soulwatch_peer

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROJECT = "3f1c1c6e-0b7a-4c55-9a55-2b8c1b7f0a11"


def _backend_argv(port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "tests.soulcaster_app.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


def _backend_env(**store: str) -> dict[str, str]:
    env = subprocess_env(**store)
    for name in ("REDIS_URL", "UPSTASH_REDIS_URL", "UPSTASH_REDIS_REST_URL"):
        if name not in store:
            env.pop(name, None)
    return env


def _backend_down_rule(tmp_path: Path) -> Path:
    """The preset's BackendDown rule as shipped, with only its ``for`` shortened."""
    source = Path(preset.__file__).parent / "rules" / "backend.yml"
    doc = yaml.safe_load(source.read_text())
    [rule] = [r for g in doc["groups"] for r in g["rules"] if r.get("alert") == "BackendDown"]
    rule["for"] = "2s"
    path = tmp_path / "backend.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "backend", "rules": [rule]}]}))
    return path


def _monitor_config(tmp_path: Path, listen: int, backend: str, hook: str) -> Path:
    _backend_down_rule(tmp_path)
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
            rule_files: [backend.yml]
            probes:
              - job_name: backend-health
                prober: http
                targets: ["{backend}/health"]
                interval: 1s
                timeout: 1s
                http: {{valid_status_codes: [200]}}
            """
        )
        + pager_alerting(hook)
    )
    return config


def test_own_health_fails_with_redis_backend_down_pages_and_500s_keep_request_ids(
    tmp_path: Path,
) -> None:
    port, listen = free_port(), free_port()
    backend = f"http://127.0.0.1:{port}"
    base = f"http://127.0.0.1:{listen}"
    with RedisServer() as redis_server, Recorder() as hook:
        env = _backend_env(REDIS_URL=redis_server.url)
        alive = lambda: httpx.get(f"{backend}/", timeout=1).status_code == 200  # noqa: E731
        with (
            started(_backend_argv(port), env=env, cwd=str(REPO), ready=alive, timeout=30),
            httpx.Client(base_url=backend, timeout=5) as client,
        ):
            # The app's own /health answers, not the SDK's.
            health = client.get("/health")
            assert health.status_code == 200
            assert health.json()["status"] == "healthy"
            assert health.json()["storage"] == "connected"
            assert client.get("/ready").json()["checks"]["store"]["ok"] is True
            assert "http_requests_total" in client.get("/metrics").text
            created = client.post(
                "/jobs", params={"project_id": PROJECT}, json={"cluster_id": "c1"}
            )
            assert created.status_code == 200

            config = _monitor_config(tmp_path, listen, backend, hook.url)
            with (
                soulwatch_peer(config, port=listen),
                httpx.Client(base_url=base, timeout=10) as api,
            ):
                up = 'probe_success{job="backend-health"} == 1'
                wait_until(
                    lambda: api.get("/api/v1/query", params={"query": up}).json()["data"]["result"],
                    timeout=20,
                    what="a passing /health probe",
                )

                redis_server.stop()
                # /health now fails with its store, as Soulcaster's does.
                down = client.get("/health")
                assert down.status_code == 503
                assert down.json()["detail"]["status"] == "unhealthy"
                assert client.get("/ready").status_code == 503
                # An API call that needs Redis raises; the handler re-raises; the 500 keeps the id.
                failed = client.post(
                    "/jobs",
                    params={"project_id": PROJECT},
                    json={"cluster_id": "c1"},
                    headers={"X-Request-ID": "req-from-the-dashboard-01"},
                )
                assert failed.status_code == 500
                assert failed.headers["x-request-id"] == "req-from-the-dashboard-01"
                assert failed.text == "Internal Server Error"
                fresh = client.post(
                    "/jobs", params={"project_id": PROJECT}, json={"cluster_id": "c1"}
                )
                assert fresh.status_code == 500
                assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
                # The 500s are measured as the client saw them.
                wait_until(
                    lambda: re.search(
                        r'http_requests_total\{method="POST",route="/jobs",status="500"\} 2\.0',
                        client.get("/metrics").text,
                    ),
                    timeout=5,
                    what="the 500s counted",
                )

                wait_until(
                    lambda: pages(hook, "BackendDown", "firing"),
                    timeout=30,
                    what="BackendDown paged",
                )
                page = pages(hook, "BackendDown", "firing")[0]
                assert page["commonLabels"]["priority"] == "P1"
                assert f"{backend}/health" in page["alerts"][0]["annotations"]["description"]

                redis_server.start()
                assert client.get("/health").status_code == 200
                wait_until(
                    lambda: pages(hook, "BackendDown", "resolved"), timeout=30, what="resolved"
                )
