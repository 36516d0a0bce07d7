"""Alerts become Soulcaster feedback through its Datadog intake, run here as Soulcaster runs it."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import httpx
import pytest
import redis

from soulwatch.alerting.config import parse_config
from soulwatch.alerting.export import export_alertmanager
from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.alerting.notifiers.soulcaster import (
    MonitorEvidence,
    SoulcasterNotifier,
    measured_expression,
)
from soulwatch.alerting.outbox import RowState
from soulwatch.alerting.routing import build_tree, receivers_for
from soulwatch.alerts import Alert
from soulwatch.clock import SimulatedClock
from soulwatch.config import load_config
from soulwatch.config import parse_config as parse_soulwatch_config
from soulwatch.exceptions import ConfigError
from soulwatch.promql.engine import Engine
from soulwatch.service import Monitor
from soulwatch.sources.collectors.soulcaster import FailedJob
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels
from tests.alerting.soulcaster_intake import Project, SoulcasterIntake
from tests.alerting.support import harness
from tests.helpers import REPO, RedisServer, UvicornThread
from tests.sources.collectors.platform_data import put_job

PROJECT = "5b1f6c1e-2f57-4a43-9d1c-7d5f0c1b2a3e"
SECRET = "whsec-soulcaster-0123456789"
PRESET = REPO / "src" / "soulwatch" / "presets" / "soulcaster" / "soulwatch.yaml"


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
    # The console's page about this very alert.
    assert item["metadata"]["snapshot_url"] == (
        f"http://soulwatch.example:9090/alerts/{alert.fingerprint}"
    )
    body = item["body"]
    assert "Summary: 75% of agent jobs are failing" in body
    assert "Runbook: https://soulwatch.example/docs/runbooks#agentfailurespike" in body
    assert "- priority: P1" in body
    assert "Rule expression:\n    up" in body
    assert SECRET not in json.dumps(item, default=str)


async def test_an_alert_already_reported_is_a_duplicate_when_its_group_grows(
    intake: tuple[SoulcasterIntake, str], tmp_path: Path, clock: SimulatedClock
) -> None:
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret=SECRET)
    async with harness(_routing(url, repeat="24h"), tmp_path, clock) as h:
        first = Alert(
            Labels.of(alertname="AgentFailureCategory", category="linter_error"), {}, clock.time()
        )
        await h.fire(first)
        await h.run_for(2 * 3600, step=60)
        timeout = Alert(
            Labels.of(alertname="AgentFailureCategory", category="sandbox_timeout"),
            {},
            clock.time(),
        )
        await h.fire(timeout)  # same group: the notification carries both alerts
        await h.run_for(120, step=30)
    assert sorted(state.answers) == [(200, "duplicate"), (200, "ok"), (200, "ok")]
    assert sorted(i["metadata"]["tags"][1] for i in state.items) == [
        "category:linter_error",
        "category:sandbox_timeout",
    ]


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


def _storage_with_failures(now: float) -> MemoryStorage:
    storage = MemoryStorage()
    for i in range(0, 1801, 60):
        t_ms = round((now - 1800 + i) * 1000)
        n = i // 60
        for labels, value in (
            (
                {
                    "__name__": "http_requests_total",
                    "job": "backend",
                    "route": "/clusters/{cluster_id}/start_fix",
                    "status": "500",
                    "method": "POST",
                },
                3.0 * n,
            ),
            (
                {
                    "__name__": "http_requests_total",
                    "job": "backend",
                    "route": "/feedback",
                    "status": "502",
                    "method": "GET",
                },
                1.0 * n,
            ),
            (
                {
                    "__name__": "http_exceptions_total",
                    "job": "backend",
                    "route": "/clusters/{cluster_id}/start_fix",
                    "exception": "E2BTimeoutError",
                },
                2.0 * n,
            ),
            (
                {
                    "__name__": "soulcaster_agent_jobs_finished_total",
                    "outcome": "failed",
                    "category": "sandbox_timeout",
                },
                0.2 * n,
            ),
        ):
            storage.add(Labels.of(labels), t_ms, value)
    return storage


async def test_the_body_carries_the_evidence_soulwatch_holds_bounded_and_scrubbed(
    intake: tuple[SoulcasterIntake, str], clock: SimulatedClock
) -> None:
    state, url = intake
    now = clock.time()
    engine = Engine(_storage_with_failures(now), clock=clock)
    jobs = [
        FailedJob(
            job_id=f"job-{i}",
            category="sandbox_timeout",
            finished_at=now - 60 * i,
            project_id=PROJECT,
            cluster_id=f"cluster-{i}",
            logs_tail=(
                f"Cloning repo with token=ghp_abcdefghijklmnopqrstuvwxyz{i:02d}\n"
                f"Sandbox timeout after 900s (job {i})"
            ),
        )
        for i in reversed(range(8))  # oldest first, as the collector keeps them
    ]
    jobs.append(FailedJob("job-lint", "linter_error", now, PROJECT, "c", "Linter error: F401"))
    expr = 'sum(rate(http_requests_total{status=~"5.."}[5m])) / 1 > 0.05'
    fired = Alert(
        Labels.of(alertname="HighErrorRate", job="backend", priority="P2"),
        {"summary": "5xx above 5%"},
        now - 120,
        generator_url=f"http://sw:9090/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
        value=0.31,
    )
    agents = Alert(
        Labels.of(alertname="AgentFailureCategory", category="sandbox_timeout", priority="P2"),
        {"summary": "agent jobs fail with sandbox_timeout"},
        now - 60,
        generator_url="http://sw:9090/graph?g0.expr="
        + quote_plus(
            "sum by (category) "
            '(increase(soulcaster_agent_jobs_finished_total{outcome="failed"}[1h])) >= 3'
        ),
    )
    async with httpx.AsyncClient() as client:
        notifier = SoulcasterNotifier(
            url,
            PROJECT,
            client=client,
            clock=clock,
            evidence=MonitorEvidence(engine, failed_jobs=lambda: jobs),
            max_body=4000,
        )
        for alert in (fired, agents):
            await notifier.notify(_notification(alert, now))
    backend, agent = (item["body"] for item in state.items)

    assert "Rule expression:\n    " + expr in backend
    values = backend.split("Values of the measured side, without the threshold")[1]
    assert "  0.06667" in values.split("Top failing routes")[0]  # (3 + 1) / 60 per second
    routes = backend.split("Top failing routes")[1]
    assert routes.index("/clusters/{cluster_id}/start_fix -> 500") < routes.index(
        "/feedback -> 502"
    )
    assert "- E2BTimeoutError in /clusters/{cluster_id}/start_fix: 60 (backend)" in backend
    assert "Last failed agent jobs" not in backend

    assert "- sandbox_timeout: 6" in agent
    assert "- job job-0: sandbox_timeout, failed" in agent
    assert "Sandbox timeout after 900s (job 0)" in agent
    assert "job job-7" not in agent  # the five newest only
    assert "job job-lint" not in agent  # of the alert's category only
    assert "ghp_" not in agent
    assert "token=[redacted]" in agent
    assert all(len(item["body"]) <= 4000 for item in state.items)


async def test_an_oversized_body_is_cut_with_a_note(
    intake: tuple[SoulcasterIntake, str], clock: SimulatedClock
) -> None:
    state, url = intake
    alert = Alert(Labels.of(alertname="Big"), {"description": "x" * 50_000}, clock.time())
    async with httpx.AsyncClient() as client:
        notifier = SoulcasterNotifier(url, PROJECT, client=client, clock=clock, max_body=2000)
        await notifier.notify(_notification(alert, clock.time()))
    [item] = state.items
    assert len(item["body"]) == 2000
    assert item["body"].endswith("[... truncated by soulwatch to stay within max_body]")


def _notification(alert: Alert, now: float) -> Notification:
    info = AlertInfo.of(alert, now)
    return Notification(
        receiver="soulcaster",
        integration="soulcaster/soulcaster/0",
        group_key='{}:{alertname="x"}',
        group_labels={},
        status=Status.FIRING,
        alerts=[info],
        external_url="http://sw:9090",
        created_at=now,
        idempotency_key="k",
    )


def test_the_preset_sends_engineering_alerts_to_soulcaster_and_not_outages() -> None:
    env = {
        "PAGERDUTY_ROUTING_KEY": "k",
        "SLACK_WEBHOOK_URL": "https://hooks.slack.example/x",
        "GITHUB_TOKEN": "t",
        "SOULCASTER_REDIS_URL": "redis://127.0.0.1:6379",
        "E2B_API_KEY": "e",
        "SOULWATCH_ADMIN_TOKEN": "admin-token-0123456789",
        "UPSTASH_VECTOR_REST_URL": "https://vector.upstash.example",
        "UPSTASH_VECTOR_REST_TOKEN": "v",
    }
    config = load_config(PRESET, env)
    assert config.routing is not None
    tree = build_tree(config.routing.route)

    def receivers(**labels: str) -> list[str]:
        return receivers_for(tree, Labels.of(labels))

    assert receivers(alertname="AgentFailureCategory", priority="P2", category="linter_error") == [
        "soulcaster",
        "chat",
        "ticket",
    ]
    assert "soulcaster" in receivers(alertname="BackendExceptions", priority="P2")
    assert "soulcaster" in receivers(alertname="HighErrorRate", priority="P1", job="backend")
    assert "soulcaster" not in receivers(alertname="RedisConnectionLoss", priority="P1")
    assert "soulcaster" not in receivers(alertname="BackendDown", priority="P1")
    assert "soulcaster" not in receivers(alertname="RedditPollerLag", priority="P2")


@pytest.mark.parametrize(
    ("expr", "measured"),
    [
        ("up == 0", "VectorSelector"),
        ("(sum(rate(x[5m])) / sum(rate(y[5m]))) > 0.05 and on (job) z >= 0.1", "ParenExpr"),
        ("sum by (category) (increase(f[1h])) >= (3)", "AggregateExpr"),
        ("time() - last > bool 7200", None),
        ("a > b", None),
        ("increase(errors[1h])", None),
    ],
)
def test_the_values_shown_are_the_measured_side_of_a_threshold(
    expr: str, measured: str | None
) -> None:
    node = measured_expression(expr)
    assert (type(node).__name__ if node is not None else None) == measured


def test_export_to_alertmanager_drops_the_receiver_type_and_its_secret() -> None:
    config = parse_config(_routing("https://soulcaster.example"))
    text, warnings = export_alertmanager(config)
    assert "soulcaster_configs" not in text
    assert SECRET not in text
    assert "receiver 'soulcaster': soulcaster_configs is soulwatch-only, not exported" in warnings


def test_a_bad_url_or_an_empty_project_is_refused_where_it_is_written() -> None:
    with pytest.raises(ConfigError, match=r"url must be the backend's http\(s\):// base URL"):
        parse_config(_routing("soulcaster.example"))
    text = _routing("https://soulcaster.example").replace(
        f"project_id: {PROJECT}", 'project_id: ""'
    )
    with pytest.raises(ConfigError, match="project_id") as err:
        parse_config(text)
    assert (err.value.line, err.value.column) == (13, 21)


async def test_the_monitor_sends_failed_jobs_from_redis_to_soulcaster(
    intake: tuple[SoulcasterIntake, str],
    tmp_path: Path,
    clock: SimulatedClock,
    redis_server: RedisServer,
) -> None:
    """The whole path: jobs in Redis, collector, preset rule, routing, outbox, evidence, intake."""
    state, url = intake
    state.projects[PROJECT] = Project(webhook_secret=SECRET)
    text = (
        f"data_dir: {tmp_path / 'data'}\n"
        "external_url: https://soulwatch.example\n"
        "global: {evaluation_interval: 10s}\n"
        f"rule_files: [{PRESET.parent / 'rules' / 'agents.yml'}]\n"
        f"collectors:\n  soulcaster: {{redis_url: '{redis_server.url}', interval_seconds: 10}}\n"
        "alerting:\n"
        "  route: {receiver: none, group_wait: 0s, routes: [{matchers: "
        "['alertname=\"AgentFailureCategory\"'], receiver: soulcaster}]}\n"
        "  receivers:\n    - name: none\n    - name: soulcaster\n      soulcaster_configs:\n"
        f"        - {{url: '{url}', project_id: {PROJECT}, webhook_secret: {SECRET}}}\n"
    )
    monitor = Monitor(parse_soulwatch_config(text, environ={}), clock=clock)
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    await monitor.start()
    try:
        await clock.advance(10)  # the collector's first sweep: the baseline
        await asyncio.sleep(0.3)
        now = clock.time()
        for i in range(40):
            if i < 5:  # one more failure per collection cycle
                logs = f"PR creation failed: 422 (job {i}) token=abc123def456"
                put_job(
                    client, f"f{i}", "failed", created=now - 300, updated=clock.time(), logs=logs
                )
            await clock.advance(10)
            await asyncio.sleep(0.2)
            if state.items:
                break
    finally:
        await monitor.stop()
        client.close()
    [item] = state.items
    assert item["title"] == "AgentFailureCategory: Agent jobs keep failing with pr_creation_failed"
    body = item["body"]
    assert "Last failed agent jobs of category pr_creation_failed (newest first):" in body
    listed = [int(n) for n in re.findall(r"- job f(\d): pr_creation_failed, failed", body)]
    assert len(listed) >= 3  # the rule needs 3 failures in the hour
    assert listed == sorted(listed, reverse=True)  # newest first
    assert f"    PR creation failed: 422 (job {listed[0]}) token=[redacted]" in body
    assert "abc123def456" not in body
    assert re.search(r"soulwatch console: https://soulwatch.example/alerts/[0-9a-f]{16}\n", body)
