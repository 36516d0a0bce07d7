"""What the monitor logs about alerts: each transition and each notification, by fingerprint."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog

from soulwatch.clock import SimulatedClock
from soulwatch.config import parse_config
from soulwatch.log_setup import configure_logging
from soulwatch.service import Monitor
from tests.helpers import Recorder, Reply


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def _events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def test_alert_transitions_and_notifications_are_logged_with_the_fingerprint(
    tmp_path: Path, clock: SimulatedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=True)
    ends = int(clock.time()) + 95
    (tmp_path / "rules.yml").write_text(
        "groups:\n  - name: g\n    interval: 10s\n    rules:\n"
        f"      - alert: Brief\n        expr: vector(time()) < {ends}\n        for: 20s\n"
    )
    with (
        Recorder() as ok,
        Recorder(default=Reply(status=500, body=b"busy")) as flaky,
        Recorder(default=Reply(status=400, body=b"bad payload")) as broken,
    ):
        text = (
            f"data_dir: {tmp_path / 'data'}\n"
            f"rule_files: [{tmp_path / 'rules.yml'}]\n"
            "alerting:\n"
            # By alertname: the meta-alert about the failing receivers is its own group.
            "  route:\n    receiver: ok\n    group_by: [alertname]\n"
            "    group_wait: 0s\n    group_interval: 10s\n"
            "    routes: [{receiver: ok, continue: true}, {receiver: flaky, continue: true},"
            " {receiver: broken}]\n"
            "  receivers:\n"
            f"    - {{name: ok, webhook_configs: [{{url: '{ok.url}/ok'}}]}}\n"
            f"    - {{name: flaky, webhook_configs: [{{url: '{flaky.url}/flaky'}}]}}\n"
            f"    - {{name: broken, webhook_configs: [{{url: '{broken.url}/broken'}}]}}\n"
            "  delivery: {initial_backoff: 1s, max_backoff: 5s, deadline: 10m}\n"
        )
        monitor = Monitor(parse_config(text, environ={}), clock=clock)
        await monitor.start()
        try:
            for _ in range(30):
                await clock.advance(5)
                await asyncio.sleep(0.05)  # the notifications' real HTTP round trips
            assert ok.received("/ok")
        finally:
            await monitor.stop()
    events = _events(capsys.readouterr().err)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_event.setdefault(event["event"], []).append(event)

    (pending,) = by_event["alert pending"]
    (firing,) = by_event["alert firing"]
    (resolved,) = by_event["alert resolved"]
    fingerprint = pending["fingerprint"]
    assert pending["alertname"] == "Brief"
    assert firing["fingerprint"] == resolved["fingerprint"] == fingerprint
    sent = [e for e in by_event["notification sent"] if e["fingerprints"] == [fingerprint]]
    assert {e["status"] for e in sent} == {"firing", "resolved"}
    assert {e["receiver"] for e in sent} == {"ok"}
    failed = [e for e in by_event["notification failed"] if e["receiver"] == "flaky"]
    assert failed
    assert failed[0]["fingerprints"] == [fingerprint]
    assert "500" in failed[0]["error"]
    gave_up = [e for e in by_event["notification gave up"] if e["receiver"] == "broken"]
    assert gave_up
    assert gave_up[0]["fingerprints"] == [fingerprint]


async def test_reloads_and_config_errors_are_logged(
    tmp_path: Path, clock: SimulatedClock, capsys: pytest.CaptureFixture[str]
) -> None:
    from soulwatch.exceptions import ConfigError

    configure_logging(json=True)
    rules = tmp_path / "rules.yml"
    rules.write_text("groups: []\n")
    text = f"data_dir: {tmp_path / 'data'}\nrule_files: [{rules}]\n"
    monitor = Monitor(parse_config(text, environ={}), clock=clock)
    await monitor.start()
    try:
        broken = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: rate(x)\n"
        rules.write_text(broken)
        with pytest.raises(ConfigError):
            await monitor.reload(parse_config(text, environ={}))
        rules.write_text("groups: []\n")
        await monitor.reload(parse_config(text, environ={}))
    finally:
        await monitor.stop()
    events = [e for e in _events(capsys.readouterr().err) if "configuration" in e["event"]]
    refused, applied = events
    assert refused["event"] == "configuration not reloaded; the old one keeps running"
    assert refused["level"] == "error"
    assert "rules.yml" in refused["error"]
    assert applied["event"] == "configuration reloaded"
