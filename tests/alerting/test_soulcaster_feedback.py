"""Alerts become Soulcaster feedback through its Datadog intake, run here as Soulcaster runs it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from soulwatch.alerting.outbox import RowState
from soulwatch.alerts import Alert
from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.model import Labels
from tests.alerting.soulcaster_intake import Project, SoulcasterIntake
from tests.alerting.support import harness
from tests.helpers import UvicornThread

PROJECT = "5b1f6c1e-2f57-4a43-9d1c-7d5f0c1b2a3e"
SECRET = "whsec-soulcaster-0123456789"


@pytest.fixture
def intake() -> Iterator[tuple[SoulcasterIntake, str]]:
    state = SoulcasterIntake()
    with UvicornThread(state.app()) as server:
        yield state, server.url


def _routing(url: str, *, secret: str | None = SECRET, extra: str = "", repeat: str = "10m") -> str:
    secret_line = f"\n        webhook_secret: {secret}" if secret else ""
    return f"""
external_url: http://soulwatch.example:9090
route:
  receiver: soulcaster
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: {repeat}
receivers:
  - name: soulcaster
    soulcaster_configs:
      - url: {url}
        project_id: {PROJECT}{secret_line}{extra}
delivery:
  initial_backoff: 10s
  max_backoff: 1m
  deadline: 1h
"""


def _agent_alert(starts_at: float) -> Alert:
    return Alert(
        Labels.of(alertname="AgentFailureSpike", priority="P1", severity="page"),
        {
            "summary": "75% of agent jobs are failing",
            "description": "75% of the agent jobs that finished in the last 15 minutes failed.",
            "runbook_url": "https://soulwatch.example/docs/runbooks#agentfailurespike",
        },
        starts_at,
        generator_url="http://soulwatch.example:9090/graph?g0.expr=up&g0.tab=1",
        value=0.75,
    )


async def test_a_firing_alert_becomes_one_feedback_item_and_a_repeat_is_a_duplicate(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret=SECRET)
    alert = _agent_alert(clock.time())
    async with harness(_routing(url), tmp_path, clock) as h:
        await h.fire(alert)
        assert state.answers == [(200, "ok")]
        [item] = state.items
        # Still firing 10 minutes later: the repeat lands in the same hour.
        await h.run_for(11 * 60, step=30)
        assert state.answers == [(200, "ok"), (200, "duplicate")]
        assert len(state.items) == 1
        assert [r.state for r in h.outbox.rows()] == [RowState.DELIVERED, RowState.DELIVERED]

    assert item["title"] == "AgentFailureSpike: 75% of agent jobs are failing"
    assert (
        item["external_id"]
        == f"AgentFailureSpike-{alert.fingerprint}-{int(clock.time() - 11 * 60) // 3600}"
    )
    assert item["metadata"]["alert_type"] == "error"
    assert item["metadata"]["priority"] == "P1"
    assert "alertname:AgentFailureSpike" in item["metadata"]["tags"]
    assert item["metadata"]["snapshot_url"] == "http://soulwatch.example:9090/alerts"
    body = item["body"]
    assert "Summary: 75% of agent jobs are failing" in body
    assert "Runbook: https://soulwatch.example/docs/runbooks#agentfailurespike" in body
    assert "- priority: P1" in body
    assert "Rule expression:\n    up" in body
    assert SECRET not in json.dumps(item, default=str)


async def test_a_wrong_secret_is_a_401_the_outbox_reports_as_a_permanent_failure(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret="the-secret-soulcaster-has")
    async with harness(_routing(url, secret="a-stale-secret"), tmp_path, clock) as h:
        await h.fire(_agent_alert(clock.time()))
        await h.run_for(120, step=10)
        [row] = h.outbox.rows()
        errors = h.outbox.integration_errors()
    assert state.answers == [(401, "Invalid webhook signature")]  # not retried
    assert state.items == []
    assert row.state is RowState.FAILED
    [(message, _, failing)] = errors.values()
    assert "soulcaster: HTTP 401" in message
    assert failing


async def test_without_a_secret_nothing_is_signed_and_a_secret_project_refuses_that(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    async with harness(_routing(url, secret=None), tmp_path, clock) as h:
        await h.fire(_agent_alert(clock.time()))
        assert state.answers == [(200, "ok")]
        state.projects[PROJECT] = Project(webhook_secret=SECRET)
        await h.fire(Alert(Labels.of(alertname="HighErrorRate"), {}, clock.time()))
    assert state.answers[-1] == (401, "Missing X-Datadog-Signature header")
    assert len(state.items) == 1


async def test_the_monitor_filter_takes_the_stable_alert_id(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    wanted = _agent_alert(clock.time())
    other = Alert(Labels.of(alertname="RedisConnectionLoss", priority="P1"), {}, clock.time())
    state.projects[PROJECT] = Project(
        webhook_secret=SECRET, monitors=[f"AgentFailureSpike-{wanted.fingerprint}"]
    )
    async with harness(_routing(url), tmp_path, clock) as h:
        await h.fire(wanted, other)
    assert sorted(state.answers) == [(200, "filtered"), (200, "ok")]
    assert [i["title"] for i in state.items] == ["AgentFailureSpike: 75% of agent jobs are failing"]


async def test_an_outage_is_retried_until_soulcaster_takes_it_once(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret=SECRET)
    state.outage = 3
    async with harness(_routing(url), tmp_path, clock) as h:
        await h.fire(_agent_alert(clock.time()))
        assert state.answers == [(503, "outage")]
        await h.run_for(5 * 60, step=5)
        rows = h.outbox.rows()
    assert state.answers == [(503, "outage")] * 3 + [(200, "ok")]
    assert len(state.items) == 1
    assert rows[0].state is RowState.DELIVERED
    assert rows[0].attempts == 4


async def test_resolved_alerts_are_sent_only_when_asked_for(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret=SECRET)
    alert = _agent_alert(clock.time())
    async with harness(_routing(url), tmp_path, clock) as h:
        await h.fire(alert)
        await clock.advance(120)
        await h.resolve(alert)
        await h.run_for(120, step=30)
    assert state.answers == [(200, "ok")]

    state.items.clear()
    state.answers.clear()
    config = _routing(url, extra="\n        send_resolved: true", repeat="4h")
    async with harness(config, tmp_path, clock, db="second.db") as h:
        await h.fire(alert)
        await h.run_for(2 * 3600, step=60)  # a recovery two hours later is a new item
        await h.resolve(alert)
        await h.run_for(120, step=30)
    assert state.answers == [(200, "ok"), (200, "ok")]
    resolved = state.items[-1]
    assert resolved["title"].startswith("[Resolved] AgentFailureSpike")
    assert resolved["metadata"]["alert_type"] == "success"
