"""Secret scrubbing of free text and structures: what is masked, what is left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from soulwatch.instrument.redact import (
    BUILTIN_PATTERNS,
    REDACTED,
    add_pattern,
    patterns,
    redact,
    redact_text,
    reset_patterns,
)


@pytest.fixture(autouse=True)
def _no_extra_patterns() -> Iterator[None]:
    reset_patterns()
    yield
    reset_patterns()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("login failed password=hunter2", "login failed password=[redacted]"),
        ("reddit 503 token=abcdef123456789", "reddit 503 token=[redacted]"),
        ("api_key: sk-live-1234567890", "api_key: [redacted]"),
        ("Authorization: Bearer eyJhbGciOi.x.y", "Authorization: Bearer [redacted]"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic [redacted]"),
        ("connect postgres://user:pass@host:5432/db", "connect postgres://[redacted]@host:5432/db"),
        ("redis://default:p4ss@host:6379", "redis://[redacted]@host:6379"),
        ("https://abc123@o1.ingest.sentry.io/1", "https://[redacted]@o1.ingest.sentry.io/1"),
        ("key id AKIAIOSFODNN7EXAMPLE in use", "key id [redacted] in use"),
        (
            "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "AWS_SECRET_ACCESS_KEY=[redacted]",
        ),
        ("mail bob.smith@example.co.uk today", "mail [redacted] today"),
        ("GET /cb?code=1&access_token=zzz999", "GET /cb?code=1&access_token=[redacted]"),
        ('{"password": "hunter 2", "n": 1}', '{"password": "[redacted]", "n": 1}'),
        ("{'client_secret': 'abc', 'n': 1}", "{'client_secret': '[redacted]', 'n': 1}"),
        ("Cookie: session=abc; theme=dark", "Cookie: [redacted]"),
        ("pushed with ghp_abcdefghijklmnopqrstuvwxyz12", "pushed with [redacted]"),
        ("slack xoxb-1234567890-abcdefghij", "slack [redacted]"),
        ("raw sk-live-1234567890 in text", "raw [redacted] in text"),
    ],
)
def test_free_text_secrets_are_masked(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "plain message, nothing secret",
        "max_tokens: 5 token_count=3 tokens=9",
        "job 7 finished at 12:30:11 in 3.5s (status=failed)",
        "GET /clusters/{id} 200",
        "Agent script exited with code 1",
        "secretary: Bob",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_masking_is_stable_when_applied_twice() -> None:
    once = redact_text("password=hunter2 Authorization: Bearer abcdefgh a@b.io")
    assert redact_text(once) == once


def test_structures_drop_sensitive_keys_and_scrub_every_string() -> None:
    event = {
        "request": {
            "headers": [["Authorization", "Bearer abcdefgh"], ["Accept", "*/*"]],
            "cookies": {"session": "s3cr3t"},
            "data": '{"email": "ada@example.com", "plan": "pro"}',
        },
        "extra": {"password": "hunter2", "count": 3, "url": "postgres://u:pw@db/x"},
        "breadcrumbs": {"values": [{"message": "retry token=abcdef123456789"}]},
    }
    cleaned = redact(event)
    raw = json.dumps(cleaned)
    for secret in ("abcdefgh", "s3cr3t", "ada@example.com", "hunter2", ":pw@", "abcdef123456789"):
        assert secret not in raw
    assert cleaned["request"]["headers"][1] == ["Accept", "*/*"]
    assert json.loads(cleaned["request"]["data"])["plan"] == "pro"  # a JSON body stays JSON
    assert cleaned["extra"]["count"] == 3


def test_nesting_too_deep_to_walk_is_dropped_not_forwarded() -> None:
    value: object = "password=hunter2"
    for _ in range(200):
        value = [value]
    assert "hunter2" not in json.dumps(redact(value))


def test_added_patterns_apply_everywhere_and_can_be_reset() -> None:
    assert redact_text("customer ssn=123-45-6789") == "customer ssn=123-45-6789"
    add_pattern(r"ssn=(?P<secret>\d{3}-\d{2}-\d{4})", name="ssn")
    assert redact_text("customer ssn=123-45-6789") == "customer ssn=[redacted]"
    add_pattern(r"INTERNAL-\d+")
    assert redact({"m": "ticket INTERNAL-42"}) == {"m": f"ticket {REDACTED}"}
    assert [p.name for p in patterns()][-2:] == ["ssn", r"INTERNAL-\d+"]
    reset_patterns()
    assert patterns() == BUILTIN_PATTERNS
    assert redact_text("customer ssn=123-45-6789") == "customer ssn=123-45-6789"


def test_a_bad_pattern_is_refused_with_its_text() -> None:
    with pytest.raises(ValueError, match=r"'\(unclosed' is not a valid regex"):
        add_pattern("(unclosed")
    with pytest.raises(ValueError, match="matches the empty string"):
        add_pattern(r"x*")
    assert patterns() == BUILTIN_PATTERNS
