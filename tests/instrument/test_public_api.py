"""The SDK's public API is locked, and importing it stays light."""

from __future__ import annotations

import json
import subprocess
import sys

import soulwatch.instrument
from tests.helpers import subprocess_env

MONITOR_SIDE = ("tsdb", "promql", "rules", "alerting", "api", "sources", "service", "config")
EXTRAS = ("sentry_sdk", "redis", "httpx", "requests", "opentelemetry", "fastapi", "uvicorn")


def test_public_api_is_locked() -> None:
    assert soulwatch.instrument.__all__ == sorted(soulwatch.instrument.__all__)
    assert soulwatch.instrument.__all__ == [
        "CheckResult",
        "DogStatsDExporter",
        "ExportLoop",
        "Exporter",
        "FailureCategory",
        "HealthChecks",
        "Heartbeat",
        "HeartbeatTransport",
        "HttpMetrics",
        "InstrumentConfig",
        "Instrumentation",
        "JobRun",
        "JobTracker",
        "MetricsEndpoint",
        "MetricsMiddleware",
        "OtlpExporter",
        "Outcome",
        "RateLimitRecorder",
        "RequestIdMiddleware",
        "configure_logging",
        "current_request_id",
        "exporter_from_url",
        "get_logger",
        "http_check",
        "init_sentry",
        "instrument",
        "redis_check",
        "track_job",
    ]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_importing_the_sdk_imports_nothing_from_the_monitor_nor_the_extras() -> None:
    result = _run("import json, sys, soulwatch.instrument; print(json.dumps(sorted(sys.modules)))")
    assert result.returncode == 0, result.stderr
    modules = set(json.loads(result.stdout))
    assert "soulwatch.instrument" in modules
    monitor = {m for m in modules if m.split(".")[:2] in [["soulwatch", s] for s in MONITOR_SIDE]}
    assert monitor == set()
    extras = {m for m in modules if m.split(".")[0] in EXTRAS}
    assert extras == set()


def test_a_missing_extra_raises_an_error_naming_it() -> None:
    # Block the import as if the package were not installed.
    code = """
import sys
sys.modules["redis"] = None
sys.modules["redis.asyncio"] = None
sys.modules["sentry_sdk"] = None
sys.modules["requests"] = None
sys.modules["requests.adapters"] = None
from soulwatch.exceptions import MissingExtraError
from soulwatch.instrument import RateLimitRecorder, init_sentry, redis_check
from prometheus_client import CollectorRegistry
for call in (
    lambda: redis_check("redis://127.0.0.1:6379"),
    lambda: init_sentry("http://k@127.0.0.1:9/1"),
    lambda: RateLimitRecorder("reddit", registry=CollectorRegistry()).requests_adapter(),
):
    try:
        call()
    except MissingExtraError as exc:
        print(exc.extra, "|", exc)
"""
    result = _run(code)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(" | ")[0] for line in lines] == ["redis", "sentry", "requests"]
    assert "pip install 'soulwatch[redis]'" in lines[0]
