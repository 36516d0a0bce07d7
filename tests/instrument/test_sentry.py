"""The real sentry-sdk, from a real uvicorn process, to a local server standing in for Sentry."""

from __future__ import annotations

import gzip
import json
import logging
import sys
import zlib
from typing import Any

import httpx
import pytest

from soulwatch.instrument import init_sentry
from soulwatch.instrument.sentry import make_before_send
from tests.helpers import RecordedRequest, Recorder, free_port, started, subprocess_env, wait_until


def _envelope_items(request: RecordedRequest) -> list[tuple[dict[str, Any], Any]]:
    body = request.body
    encoding = request.headers.get("content-encoding", "")
    if encoding == "gzip":
        body = gzip.decompress(body)
    elif encoding == "deflate":
        body = zlib.decompress(body)
    elif encoding == "br":
        import brotli  # type: ignore[import-not-found]

        body = brotli.decompress(body)
    lines = body.split(b"\n")
    items = []
    i = 1  # line 0 is the envelope header
    while i + 1 < len(lines):
        header = json.loads(lines[i])
        payload = lines[i + 1]
        items.append((header, json.loads(payload) if payload.startswith(b"{") else payload))
        i += 2
    return items


def _events(recorder: Recorder) -> list[dict[str, Any]]:
    return [
        payload
        for request in recorder.received("/api/1/envelope/")
        for header, payload in _envelope_items(request)
        if header.get("type") == "event"
    ]


def test_unhandled_exception_reaches_sentry_with_the_request_id_and_no_secrets(
    recorder: Recorder,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    dsn = f"http://publickey@127.0.0.1:{recorder.port}/1"
    argv = [
        sys.executable, "-m", "uvicorn", "tests.instrument.apps:served_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = subprocess_env(SW_TEST_SENTRY_DSN=dsn)
    with started(argv, env=env, ready=lambda: httpx.get(url + "/health").is_success):
        response = httpx.get(
            url + "/boom",
            headers={"X-Request-ID": "req-sentry-0003", "Authorization": "Bearer topsecret123"},
        )
        assert response.status_code == 500
        events = wait_until(lambda: _events(recorder), timeout=20, what="a Sentry event")

    event = events[0]
    assert event["tags"]["request_id"] == "req-sentry-0003"
    assert event["tags"]["service"] == "test-backend"
    assert event["environment"] == "test"
    assert event["release"] == "1.2.3"
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    raw = json.dumps(events)
    assert "hunter2" not in raw
    assert "topsecret123" not in raw


def test_without_a_dsn_sentry_stays_off_and_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    with caplog.at_level(logging.INFO, logger="soulwatch.instrument.sentry"):
        assert init_sentry(None, service="svc") is False
    assert "sentry disabled: no DSN" in caplog.text


def test_before_send_tags_scrubs_and_chains_to_the_users_hook() -> None:
    seen: list[dict[str, Any]] = []

    def users_hook(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
        seen.append(event)
        return event

    before_send = make_before_send("backend", users_hook)
    event = {
        "message": "connect to redis://default:pw123456@upstash:6379 failed",
        "request": {"headers": {"Authorization": "Bearer abcdefgh", "Accept": "*/*"}},
    }
    result = before_send(event, {})
    assert result is not None
    assert result["tags"]["service"] == "backend"
    assert "pw123456" not in result["message"]
    assert result["request"]["headers"] == {"Authorization": "[redacted]", "Accept": "*/*"}
    assert seen == [result]


def test_no_secret_reaches_sentry_in_values_breadcrumbs_frame_vars_or_bodies(
    recorder: Recorder,
) -> None:
    from tests.instrument.leaky_app import SECRETS

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [
        sys.executable, "-m", "uvicorn", "tests.instrument.leaky_app:served_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
    ]  # fmt: skip
    env = subprocess_env(
        SW_TEST_SENTRY_DSN=f"http://publickey@127.0.0.1:{recorder.port}/1",
        SW_TEST_SENTRY_TRACES="1.0",
    )
    with started(argv, env=env, ready=lambda: httpx.get(url + "/health").is_success):
        response = httpx.post(
            url + "/signup?token=abcdef123456789",
            json={"email": "ada.lovelace@example.com", "password": "hunter2", "plan": "pro"},
        )
        assert response.status_code == 500
        events = wait_until(lambda: _events(recorder), timeout=20, what="a Sentry event")
        wait_until(lambda: _items(recorder, "transaction"), timeout=20, what="a Sentry transaction")

    event = events[0]
    # What makes the event useful is still there...
    exception = event["exception"]["values"][-1]
    assert exception["type"] == "RuntimeError"
    assert exception["value"].startswith("login failed password=[redacted] for [redacted] via ")
    crumbs = [c.get("message", "") for c in event["breadcrumbs"]["values"]]
    assert any(c.startswith("calling billing with api_key: [redacted]") for c in crumbs)
    frames = exception["stacktrace"]["frames"]
    signup = next(f for f in frames if f.get("function") == "signup")
    assert {"api_token", "aws", "body"} <= signup["vars"].keys()
    assert event["request"]["data"]["plan"] == "pro"
    # ...and nothing secret is, anywhere in the envelope.
    raw = b"".join(_decoded(r) for r in recorder.received("/api/1/envelope/")).decode()
    leaked = [secret for secret in SECRETS if secret in raw]
    assert leaked == []


def _items(recorder: Recorder, kind: str) -> list[Any]:
    return [
        payload
        for request in recorder.received("/api/1/envelope/")
        for header, payload in _envelope_items(request)
        if header.get("type") == kind
    ]


def _decoded(request: RecordedRequest) -> bytes:
    return b"\n".join(
        json.dumps(payload).encode() if isinstance(payload, dict) else payload
        for _, payload in _envelope_items(request)
    )
