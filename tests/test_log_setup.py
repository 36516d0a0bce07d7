"""The monitor's logging: one chain for every logger, replaced by a second set-up."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from soulwatch.log_setup import configure_logging


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Leave the process's logging as the test found it."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {n: logging.getLogger(n).level for n in ("httpx", "httpcore", "uvicorn.access")}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)
    structlog.reset_defaults()


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_json_mode_writes_json_only(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(json=True)
    structlog.get_logger("soulwatch.service").info("soulwatch started", targets=2)
    logging.getLogger("uvicorn.error").error("Exception in ASGI application")
    logging.getLogger("asyncio").warning("Executing <Task> took 1.2 seconds")
    logging.getLogger("soulwatch.rules").info(
        "alert firing", extra={"alertname": "BackendDown", "fingerprint": "0a1b2c3d4e5f6071"}
    )
    lines = _lines(capsys.readouterr().err)
    events = [json.loads(line) for line in lines]  # every line is one JSON object
    assert [e["event"] for e in events] == [
        "soulwatch started",
        "Exception in ASGI application",
        "Executing <Task> took 1.2 seconds",
        "alert firing",
    ]
    assert events[0]["targets"] == 2
    assert events[1]["level"] == "error"
    assert events[1]["logger"] == "uvicorn.error"
    assert events[3]["fingerprint"] == "0a1b2c3d4e5f6071"


def test_a_second_set_up_replaces_the_first(capsys: pytest.CaptureFixture[str]) -> None:
    log = structlog.get_logger("soulwatch.service")
    configure_logging(json=False)
    configure_logging(json=True)
    log.info("configuration reloaded", rule_groups=3)
    logging.getLogger("httpx").warning("HTTP Request: GET http://127.0.0.1:9/ 503")
    lines = _lines(capsys.readouterr().err)
    # One handler, the second one: each event once, as JSON.
    assert [json.loads(line)["event"] for line in lines] == [
        "configuration reloaded",
        "HTTP Request: GET http://127.0.0.1:9/ 503",
    ]


def test_request_logs_of_http_libraries_are_kept_from_warning_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(json=True)
    logging.getLogger("httpx").info("HTTP Request: GET http://127.0.0.1:9/metrics 200")
    assert _lines(capsys.readouterr().err) == []
