"""Alerts posted through Alertmanager's API v2 go through soulwatch's routing, and read back."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from soulwatch.alerting.intake import AlertQuery, DispatcherIntake, to_alert
from soulwatch.alerting.silences import PostableSilence, SilenceMatcher
from soulwatch.api.status import redact
from soulwatch.clock import SimulatedClock
from tests.alerting.support import Harness, harness
from tests.helpers import Recorder

CONFIG = """
global:
  resolve_timeout: 5m
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 10s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook", send_resolved: true}}]
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="info"']
    equal: [service]
"""


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _intake(h: Harness) -> DispatcherIntake:
    return DispatcherIntake(
        dispatcher=lambda: h.dispatcher,
        routing=lambda: h.config,
        silences=h.silences,
        clock=h.clock,
        started_at=h.clock.time(),
        redact=redact,
    )


def _hooked(rec: Recorder) -> list[tuple[str, list[str]]]:
    return [
        (body["status"], sorted(a["labels"]["alertname"] for a in body["alerts"]))
        for body in (r.json() for r in rec.received("/hook"))
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"labels": {}}, "at least one label pair required"),
        ({"labels": {"a": ""}}, "at least one label pair required"),
        ({"labels": {"1a": "x"}}, 'invalid label set: invalid name "1a"'),
        ({"labels": "x"}, "labels: Input should be a valid dictionary"),
        (
            {
                "labels": {"a": "b"},
                "startsAt": "2030-01-02T00:00:00Z",
                "endsAt": "2030-01-01T00:00:00Z",
            },
            "start time must be before end time",
        ),
    ],
)
def test_invalid_alerts_are_refused_with_alertmanagers_reason(raw: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        to_alert(raw, 1_700_000_000.0)


def test_defaults_as_in_alertmanager() -> None:
    alert = to_alert({"labels": {"alertname": "A", "empty": ""}, "annotations": {"x": ""}}, 100.0)
    assert alert.labels.to_dict() == {"alertname": "A"}
    assert alert.annotations == {}
    assert (alert.starts_at, alert.ends_at) == (100.0, None)
    zero = to_alert({"labels": {"a": "b"}, "endsAt": "0001-01-01T00:00:00Z"}, 100.0)
    assert zero.ends_at is None


async def test_posted_alerts_are_routed_and_resolve_after_resolve_timeout(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    with Recorder() as rec:
        async with harness(CONFIG.format(url=rec.url), tmp_path, clock) as h:
            intake = _intake(h)
            errors = await intake.post_alerts(
                [{"labels": {"alertname": "Posted", "service": "api"}}, {"labels": {}}]
            )
            assert errors == ["at least one label pair required"]
            await h.run_for(2)
            assert _hooked(rec) == [("firing", ["Posted"])]
            [shown] = intake.alerts(AlertQuery())
            assert shown["status"] == {"inhibitedBy": [], "silencedBy": [], "state": "active"}
            assert shown["receivers"] == [{"name": "hook"}]
            # Never re-sent: resolved resolve_timeout (5m) after it was received.
            await h.run_for(310, step=5)
            assert _hooked(rec)[-1] == ("resolved", ["Posted"])
            assert intake.alerts(AlertQuery()) == []


async def test_an_end_time_ahead_holds_past_resolve_timeout(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    with Recorder() as rec:
        async with harness(CONFIG.format(url=rec.url), tmp_path, clock) as h:
            intake = _intake(h)
            ends = clock.time() + 600
            await intake.post_alerts([{"labels": {"alertname": "Held"}, "endsAt": _iso(ends)}])
            await h.run_for(400, step=5)
            assert _hooked(rec) == [("firing", ["Held"])]
            assert len(intake.alerts(AlertQuery())) == 1
            await h.run_for(220, step=5)
            assert _hooked(rec)[-1] == ("resolved", ["Held"])


async def test_silenced_and_inhibited_alerts_read_back_suppressed(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    with Recorder() as rec:
        async with harness(CONFIG.format(url=rec.url), tmp_path, clock) as h:
            intake = _intake(h)
            await intake.post_alerts(
                [
                    {"labels": {"alertname": "Down", "service": "db", "severity": "page"}},
                    {"labels": {"alertname": "Slow", "service": "db", "severity": "info"}},
                    {"labels": {"alertname": "Noisy", "service": "web"}},
                ]
            )
            silence_id = h.silences.create(
                PostableSilence(
                    matchers=[SilenceMatcher(name="alertname", value="Noisy", isRegex=False)],
                    startsAt=datetime.fromtimestamp(clock.time(), UTC),
                    endsAt=datetime.fromtimestamp(clock.time() + 3600, UTC),
                    createdBy="test",
                    comment="quiet",
                )
            )
            await h.run_for(2)
            by_name = {a["labels"]["alertname"]: a for a in intake.alerts(AlertQuery())}
            assert by_name["Down"]["status"]["state"] == "active"
            assert by_name["Slow"]["status"]["inhibitedBy"] == [by_name["Down"]["fingerprint"]]
            assert by_name["Noisy"]["status"]["silencedBy"] == [silence_id]
            assert by_name["Noisy"]["status"]["state"] == "suppressed"
            active = intake.alerts(AlertQuery(silenced=False, inhibited=False))
            assert [a["labels"]["alertname"] for a in active] == ["Down"]
            assert _hooked(rec) == [("firing", ["Down"])]
            groups = intake.groups(AlertQuery())
            assert sorted(g["labels"]["alertname"] for g in groups) == ["Down", "Noisy", "Slow"]
            assert intake.status()["cluster"]["status"] == "disabled"
            assert rec.url not in intake.status()["config"]["original"]
