"""The data directory's permissions and URL redaction in logs, at the unit level."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path

import httpx
import pytest
import structlog

from soulwatch.datadir import secure_data_dir
from soulwatch.redaction import redact_url, without_credentials
from soulwatch.server import configure_logging
from tests.helpers import Recorder


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_data_directory_left_readable_by_an_older_version_is_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "tsdb" / "wal").mkdir(parents=True)
    for path in (data, data / "tsdb", data / "tsdb" / "wal"):
        path.chmod(0o755)
    outbox = data / "outbox.sqlite"
    outbox.write_bytes(b"payloads")
    outbox.chmod(0o644)
    segment = data / "tsdb" / "wal" / "00000001"
    segment.write_bytes(b"samples")
    segment.chmod(0o664)
    secure_data_dir(data)
    assert [_mode(p) for p in (data, data / "tsdb", data / "tsdb" / "wal")] == [0o700] * 3
    assert (_mode(outbox), _mode(segment)) == (0o600, 0o600)


def test_a_new_data_directory_is_private(tmp_path: Path) -> None:
    data = tmp_path / "a" / "data"
    secure_data_dir(data)
    assert _mode(data) == 0o700


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        (
            "https://hooks.slack.com/services/T0123/B0456/abcdEFGH1234ijkl5678mnop",
            "https://hooks.slack.com/services/T0123/B0456/...",
        ),
        ("http://user:pw@127.0.0.1:9/hook?token=s3cret#x", "http://127.0.0.1:9/hook?..."),
        (
            "https://discord.com/api/webhooks/112233445566778899/AbCdEf-123456_gHiJkL",
            "https://discord.com/api/webhooks/112233445566778899/...",
        ),
        ("http://[::1]:9797/-/healthy", "http://[::1]:9797/-/healthy"),
    ],
)
def test_urls_are_logged_without_secrets(url: str, logged: str) -> None:
    assert redact_url(url) == logged


def test_instance_labels_keep_the_target_but_not_its_credentials() -> None:
    assert without_credentials("https://u:p@h.example/health?token=t&page=2") == (
        "https://h.example/health?token=...&page=2"
    )
    assert without_credentials("http://h.example/x?a=1") == "http://h.example/x?a=1"


def test_httpx_request_lines_pass_the_filter_without_secrets(
    capfd: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    root.handlers.clear()
    try:
        configure_logging(json=True)
        # httpx's request lines are kept to warnings by default; turned back on,
        # they still go through the redaction.
        logging.getLogger("httpx").setLevel(logging.INFO)
        with Recorder() as rec:
            url = rec.url.replace("http://", "http://bot:pass-8841@") + "/hook?token=tok-5521"
            httpx.post(url, json={}, timeout=10)
            structlog.get_logger("soulwatch.test").warning("delivery failed", url=url)
        err = capfd.readouterr().err
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging.getLogger("httpx").setLevel(logging.NOTSET)
        structlog.reset_defaults()
    host = rec.url.removeprefix("http://")
    events = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert f'HTTP Request: POST http://{host}/hook?... "HTTP/1.1 200 OK"' in [
        e["event"] for e in events
    ]
    event = next(e for e in events if e["event"] == "delivery failed")
    assert event["url"] == f"http://{host}/hook?..."
    assert "pass-8841" not in err
    assert "tok-5521" not in err
