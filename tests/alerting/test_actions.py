"""Automatic recovery: the action runs first; the page goes out only if the alert still fires."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys

import httpx
from prometheus_client import CollectorRegistry

from soulwatch.alerting.actions import ActionOutcome, ActionRunner
from soulwatch.alerting.config import parse_config
from soulwatch.alerting.dispatcher import Dispatcher
from soulwatch.alerting.notifiers.factory import build_notifiers
from soulwatch.alerting.outbox import ForwardingListener, Outbox
from tests.alerting.support import Harness, alert
from tests.helpers import Recorder, Reply


def _config(hook: str, admin: str, command: str) -> str:
    return f"""
route:
  receiver: page
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: page
    webhook_configs: [{{url: "{hook}/page"}}]
actions:
  - name: trigger-poll
    http: {{method: POST, url: "{admin}/admin/trigger-poll?project_id=p1"}}
    cooldown: 30m
    max_attempts: 2
    verify_after: 5m
  - name: restart
    command: [{sys.executable!r}, "-c", "{command}"]
    verify_after: 2m
"""


@contextlib.asynccontextmanager
async def _harness(text, tmp_path, clock):
    config = parse_config(text)
    async with httpx.AsyncClient(timeout=5.0) as client:
        outbox = Outbox(
            tmp_path / "a.db",
            clock=clock,
            # The dispatcher, built next, raises NotificationFailing.
            listener=ForwardingListener(lambda: dispatcher),
            registry=CollectorRegistry(),
            settings=config.delivery,
            rng=random.Random(1),
        )
        outbox.use_notifiers(
            build_notifiers(config, client=client, clock=clock, issue_index=outbox.issues)
        )
        runner = ActionRunner(config.actions, db_path=tmp_path / "a.db", clock=clock, client=client)
        dispatcher = Dispatcher(config, clock=clock, outbox=outbox, actions=runner)
        tasks = [asyncio.create_task(dispatcher.run()), asyncio.create_task(outbox.run())]
        try:
            yield Harness(clock, config, outbox, dispatcher, None, CollectorRegistry()), runner  # type: ignore[arg-type]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            outbox.close()
            runner.close()


async def test_page_says_recovery_was_tried_when_alert_still_fires(tmp_path, clock):
    with Recorder() as hook, Recorder(default=Reply(500, b"boom")) as admin:
        async with _harness(_config(hook.url, admin.url, "pass"), tmp_path, clock) as (h, runner):
            await h.fire(alert(clock.time(), alertname="RedditPollerLag", action="trigger-poll"))
            assert [r.path for r in admin.received()] == ["/admin/trigger-poll?project_id=p1"]
            assert hook.received() == [], "held back while the action gets its chance"
            await h.run_for(295, step=5)
            assert hook.received() == []
            await h.run_for(10, step=5)
            (page,) = hook.received("/page")
            note = page.json()["alerts"][0]["annotations"]["auto_recovery"]
            assert note.startswith(
                "auto-recovery tried at 22:13 UTC (trigger-poll: failed, HTTP 500)"
            )
            (run,) = runner.audit()
            assert run.outcome is ActionOutcome.FAILED


async def test_no_page_when_the_action_fixed_it(tmp_path, clock):
    with Recorder() as hook, Recorder() as admin:
        async with _harness(_config(hook.url, admin.url, "pass"), tmp_path, clock) as (h, runner):
            a = alert(clock.time(), alertname="RedditPollerLag", action="trigger-poll")
            await h.fire(a)
            await h.run_for(120, step=5)
            await h.resolve(a)
            await h.run_for(600, step=10)
            assert hook.received() == []
            assert runner.audit()[0].outcome is ActionOutcome.OK


async def test_command_action_cooldown_and_audit(tmp_path, clock):
    with Recorder() as hook, Recorder() as admin:
        text = _config(hook.url, admin.url, "import sys; sys.exit(3)")
        async with _harness(text, tmp_path, clock) as (h, runner):
            a = alert(clock.time(), alertname="AgentStuck", action="restart")
            await h.fire(a)
            await h.run_for(125, step=5)
            (page,) = hook.received("/page")
            assert (
                "restart: failed, exit 3"
                in page.json()["alerts"][0]["annotations"]["auto_recovery"]
            )
            await h.resolve(a)
            await h.run_for(120, step=10)
            # Fires again within the cooldown (10m default): no second run, paged at once.
            await h.fire(alert(clock.time(), alertname="AgentStuck", action="restart"))
            await h.run_for(5, step=5)
            assert len(runner.audit()) == 1
            statuses = [r.json()["status"] for r in hook.received("/page")]
            assert statuses == ["firing", "resolved", "firing"]
