"""Structured JSON logs from a real uvicorn process: request ids on every line, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from soulwatch.instrument.logs import resolve_format
from soulwatch.instrument.redact import redact, redact_text
from tests.helpers import free_port, started, subprocess_env, wait_until


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_every_line_of_a_request_carries_its_id_including_uvicorns_access_line(
    tmp_path: Path,
) -> None:
    log_file = tmp_path / "app.jsonl"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "uvicorn", "tests.instrument.apps:served_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
    ]  # fmt: skip
    env = subprocess_env(SW_TEST_LOG_FILE=str(log_file))
    with started(argv, env=env, ready=lambda: httpx.get(url + "/health").is_success):
        ok = httpx.get(url + "/logs", headers={"X-Request-ID": "req-logs-0001"})
        assert ok.headers["x-request-id"] == "req-logs-0001"
        boom = httpx.get(url + "/boom", headers={"X-Request-ID": "req-boom-0002"})
        assert boom.status_code == 500
        assert boom.headers["x-request-id"] == "req-boom-0002"

        def boom_logged() -> list[dict[str, Any]] | None:
            lines = _lines(log_file)
            done = any(line.get("path") == "/boom" for line in lines) and any(
                "exception" in line for line in lines
            )
            return lines if done else None

        lines = wait_until(boom_logged, timeout=15, what="the /boom log lines")

    of_logs = [line for line in lines if line.get("request_id") == "req-logs-0001"]
    events = {line["event"] for line in of_logs}
    assert "structlog line" in events
    assert any(e.startswith("stdlib line") for e in events)
    assert "request" in events
    # Nothing the /logs request produced lacks its id.
    for line in lines:
        if line.get("path") == "/logs" or str(line.get("event")).startswith(
            ("structlog", "stdlib")
        ):
            assert line.get("request_id") == "req-logs-0001", line
    access = next(line for line in of_logs if line["event"] == "request")
    assert access["method"] == "GET"
    assert access["path"] == "/logs"
    assert access["status"] == 200
    assert access["logger"] == "uvicorn.access"
    assert access["service"] == "test-backend"
    structured = next(line for line in of_logs if line["event"] == "structlog line")
    assert structured["cluster"] == "c1"
    assert structured["level"] == "info"
    assert "timestamp" in structured
    stdlib = next(line for line in of_logs if line["event"].startswith("stdlib line"))
    assert "abcdef123456789" not in stdlib["event"]

    of_boom = [line for line in lines if line.get("request_id") == "req-boom-0002"]
    error = next(line for line in of_boom if "exception" in line)
    assert error["level"] == "error"
    frames = error["exception"]
    assert isinstance(frames, list)
    assert frames[-1]["exc_type"] == "RuntimeError"
    assert any(line.get("path") == "/boom" and line.get("status") == 500 for line in of_boom)
    assert "hunter2" not in json.dumps(lines)


def test_log_format_comes_from_the_argument_or_the_environment() -> None:
    assert resolve_format(None, {}) == "json"
    assert resolve_format(None, {"SOULWATCH_LOG_FORMAT": "console"}) == "console"
    assert resolve_format("json", {"SOULWATCH_LOG_FORMAT": "console"}) == "json"
    with pytest.raises(ValueError, match="SOULWATCH_LOG_FORMAT"):
        resolve_format(None, {"SOULWATCH_LOG_FORMAT": "xml"})


def test_secrets_are_redacted_in_text_and_structures() -> None:
    assert redact_text("redis://default:p4ss@host:6379") == "redis://[redacted]@host:6379"
    assert (
        redact_text("https://abc123@o1.ingest.sentry.io/1")
        == "https://[redacted]@o1.ingest.sentry.io/1"
    )
    assert redact_text("Authorization: Bearer eyJhbGciOi.x.y") == "Authorization: Bearer [redacted]"
    assert (
        redact_text("GET /cb?code=1&access_token=zzz999")
        == "GET /cb?code=1&access_token=[redacted]"
    )
    assert redact_text("plain message, nothing secret") == "plain message, nothing secret"
    event = {
        "request": {
            "headers": [["Authorization", "Bearer abcdefgh"], ["Accept", "*/*"]],
            "cookies": {"session": "s3cr3t"},
        },
        "extra": {"password": "hunter2", "count": 3, "url": "postgres://u:pw@db/x"},
    }
    cleaned = redact(event)
    assert "abcdefgh" not in json.dumps(cleaned)
    assert cleaned["request"]["headers"][1] == ["Accept", "*/*"]
    assert cleaned["request"]["cookies"] == "[redacted]"
    assert cleaned["extra"]["password"] == "[redacted]"
    assert cleaned["extra"]["count"] == 3
    assert "pw" not in cleaned["extra"]["url"]


def test_trace_and_span_ids_are_added_when_an_opentelemetry_span_is_active() -> None:
    from opentelemetry import trace

    from soulwatch.instrument.logs import add_trace_ids

    context = trace.SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    assert "trace_id" not in add_trace_ids(None, "info", {"event": "outside"})
    with trace.use_span(trace.NonRecordingSpan(context)):
        fields = add_trace_ids(None, "info", {"event": "inside"})
    assert fields["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert fields["span_id"] == "b7ad6b7169203331"


def test_console_format_is_readable_text_not_json() -> None:
    code = (
        "import logging\n"
        "from soulwatch.instrument import configure_logging, get_logger\n"
        "configure_logging(format='console', service='svc')\n"
        "get_logger('app').info('polling done', items=3)\n"
        "logging.getLogger('uvicorn.error').warning('stdlib says hi')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=subprocess_env(SOULWATCH_LOG_FORMAT="json"),  # the argument wins
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2
    assert "polling done" in lines[0]
    assert "items=3" in lines[0]
    assert "stdlib says hi" in lines[1]
    for line in lines:
        assert not line.lstrip().startswith("{")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_uvicorns_error_line_and_app_logs_carry_no_secret(tmp_path: Path, fmt: str) -> None:
    from tests.instrument.leaky_app import SECRETS

    log_file = tmp_path / "app.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "uvicorn", "tests.instrument.leaky_app:served_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "info",
    ]  # fmt: skip
    env = subprocess_env(SW_TEST_LOG_FILE=str(log_file), SW_TEST_LOG_FORMAT=fmt)
    with started(argv, env=env, ready=lambda: httpx.get(url + "/health").is_success):
        body = {"email": "ada.lovelace@example.com", "password": "hunter2"}
        assert httpx.post(url + "/signup", json=body).status_code == 500

        def error_logged() -> str | None:
            text = log_file.read_text()
            return text if "Exception in ASGI application" in text else None

        text = wait_until(error_logged, timeout=15, what="uvicorn's error line")
    assert "calling billing with api_key: [redacted] for [redacted]" in text
    assert [secret for secret in SECRETS if secret in text] == []
    if fmt == "json":
        error = next(line for line in _lines(log_file) if "exception" in line)
        assert error["logger"] == "uvicorn.error"
        assert error["exception"][-1]["exc_type"] == "RuntimeError"
        assert error["exception"][-1]["exc_value"].startswith(
            "login failed password=[redacted] for [redacted] via postgres://[redacted]@db"
        )
    else:
        assert "RuntimeError: login failed password=[redacted] for [redacted]" in text
