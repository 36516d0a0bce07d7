"""The durable outbox: outages, rate limits, permanent errors, the meta-alert, metrics."""

from __future__ import annotations

from collections import Counter

import structlog

from soulwatch.alerting.outbox import RowState
from tests.alerting.support import alert, harness
from tests.helpers import Recorder, Reply


def _config(hook: str, chat: str) -> str:
    return f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
  routes:
    - matchers: [alertname=NotificationFailing]
      receiver: chat
receivers:
  - name: hook
    webhook_configs: [{{url: "{hook}/hook"}}]
  - name: chat
    slack_configs: [{{api_url: "{chat}/slack"}}]
delivery:
  initial_backoff: 1s
  max_backoff: 1m
  deadline: 1h
"""


async def test_receiver_down_ten_minutes_then_everything_arrives_in_order_once(tmp_path, clock):
    down = True

    def handler(_req):
        return Reply(503, b"maintenance") if down else None

    with Recorder(handler=handler) as hook, Recorder() as chat:
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            alerts = {name: alert(clock.time(), alertname=name, instance="i") for name in "ABC"}
            await h.fire(*alerts.values())
            await h.run_for(120, step=5)
            # B resolves during the outage: its firing and resolved must both arrive, in order.
            await h.resolve(alerts["B"])
            await h.run_for(480, step=5)
            assert h.outbox.rows(RowState.PENDING), "notifications waiting in the outbox"
            rejected = len(hook.received("/hook"))
            assert rejected > 20, "retried all through the outage"
            down = False
            await h.run_for(120, step=5)
            # Every request after the outage was accepted (200): each key exactly once.
            accepted = hook.received("/hook")[rejected:]
            keys = [r.headers["idempotency-key"] for r in accepted]
            assert len(keys) == 4, "A, B firing, B resolved, C"
            assert Counter(keys) == Counter(
                r.idempotency_key for r in h.outbox.rows(RowState.DELIVERED)
            )
            assert max(Counter(keys).values()) == 1, "none twice"
            assert not h.outbox.rows(RowState.PENDING)
            b_statuses = [
                r.json()["status"] for r in accepted if r.json()["groupLabels"]["alertname"] == "B"
            ]
            assert b_statuses == ["firing", "resolved"], "in order within the group"
            # Transient 503s do not raise the meta-alert.
            assert chat.received() == []


async def test_429_retry_after_is_honoured(tmp_path, clock):
    with Recorder() as hook, Recorder() as chat:
        hook.replies = [Reply(429, b"slow down", {"Retry-After": "120"})]
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="A", instance="i"))
            assert len(hook.received("/hook")) == 1
            await h.run_for(115, step=5)
            assert len(hook.received("/hook")) == 1, "no retry before Retry-After"
            await h.run_for(10, step=5)
            assert len(hook.received("/hook")) == 2
            assert h.outbox.rows(RowState.DELIVERED)
            value = h.registry.get_sample_value(
                "soulwatch_notifications_total", {"receiver": "hook", "outcome": "retry"}
            )
            assert value == 1.0


async def test_permanent_error_stops_retries_and_raises_meta_alert_to_other_receiver(
    tmp_path, clock
):
    with Recorder(default=Reply(404, b"no_service")) as hook, Recorder() as chat:
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="A", instance="i"))
            await h.run_for(600, step=10)
            assert len(hook.received("/hook")) == 1, "a 404 is not retried"
            failed = h.outbox.rows(RowState.FAILED)
            assert len(failed) == 1
            assert "HTTP 404" in (failed[0].last_error or "")
            errors = h.outbox.integration_errors()
            assert errors["hook/webhook/0"][2] is True
            msgs = chat.received("/slack")
            assert len(msgs) == 1
            text = msgs[0].json()["text"]
            assert "NotificationFailing" in text
            assert (
                h.registry.get_sample_value(
                    "soulwatch_notifications_total", {"receiver": "hook", "outcome": "failed"}
                )
                == 1.0
            )


async def test_latency_metric_counts_from_firing_to_accepted(tmp_path, clock):
    with Recorder() as hook, Recorder() as chat:
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="A", instance="i"))
            count = h.registry.get_sample_value(
                "soulwatch_notification_latency_seconds_count", {"receiver": "hook"}
            )
            assert count == 1.0
            assert (
                h.registry.get_sample_value(
                    "soulwatch_notifications_total", {"receiver": "hook", "outcome": "success"}
                )
                == 1.0
            )


async def test_pagerduty_dedup_key_is_stable_across_restarts(tmp_path, clock):
    with Recorder() as pd:
        cfg = f"""
route:
  receiver: page
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
receivers:
  - name: page
    pagerduty_configs: [{{routing_key: k, url: "{pd.url}/v2/enqueue"}}]
"""
        a = alert(clock.time(), alertname="BackendDown", priority="P1", instance="i")
        async with harness(cfg, tmp_path, clock) as h:
            await h.fire(a)
        async with harness(cfg, tmp_path, clock) as h:
            await h.fire(a)
            await h.run_for(120, step=10)
            await h.resolve(a)
            await h.run_for(120, step=10)
        events = [r.json() for r in pd.received("/v2/enqueue")]
    assert [e["event_action"] for e in events] == ["trigger", "resolve"]
    assert events[0]["dedup_key"] == events[1]["dedup_key"]


async def test_finished_rows_are_pruned_after_retention(tmp_path, clock):
    with Recorder() as hook, Recorder() as chat:
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="A", instance="i"))
            assert len(h.outbox.rows(RowState.DELIVERED)) == 1
            clock.set_time(clock.time() + 8 * 86400)
            assert h.outbox.prune() == 1
            assert h.outbox.rows() == []


async def test_meta_alert_resolves_when_the_receiver_works_again(tmp_path, clock):
    with Recorder() as hook, Recorder() as chat:
        hook.replies = [Reply(410, b"gone")]
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="A", instance="i"))
            await h.run_for(60, step=10)
            await h.fire(alert(clock.time(), alertname="B", instance="i"))
            await h.run_for(120, step=10)
            texts = [r.json()["text"] for r in chat.received("/slack")]
    assert texts[0].startswith("🔥 FIRING · P2: NotificationFailing")
    assert texts[-1] == "✅ RESOLVED: NotificationFailing"
    assert [r.json()["groupLabels"]["alertname"] for r in hook.received("/hook")] == ["A", "B"]


async def test_outbox_that_cannot_write_pages_from_memory_then_catches_up(tmp_path, clock):
    a = alert(clock.time(), alertname="A", instance="i")
    with Recorder() as hook, Recorder() as chat:
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            h.outbox._db.conn.execute("PRAGMA query_only=ON")  # writes now fail, like a full disk
            await h.fire(a)
            [page] = hook.received("/hook")
            [sent] = page.json()["alerts"]
            assert "outbox" in sent["annotations"]["soulwatch_store_failing"], "the page says so"
            assert "readonly" in (h.outbox.last_error or "")
            assert h.outbox.held_in_memory == 2, "the row and its log entry"
            await h.run_for(30, step=1)
            assert len(hook.received("/hook")) == 1, "not sent twice while the disk is full"
            h.outbox._db.conn.execute("PRAGMA query_only=OFF")
            await h.run_for(10, step=1)
            assert h.outbox.last_error is None
            assert h.outbox.held_in_memory == 0
            [row] = h.outbox.rows()
            assert row.id > 0, "written to the database"
            assert row.state is RowState.DELIVERED
        # The log entry was written too: a restart does not page again.
        async with harness(_config(hook.url, chat.url), tmp_path, clock) as h:
            await h.fire(a)
            await h.run_for(30, step=1)
        assert len(hook.received("/hook")) == 1


async def test_memory_held_on_a_full_disk_stays_bounded_and_pages_go_out_once_space_is_back(
    tmp_path, clock
):
    down = True

    def handler(_req):
        return Reply(503, b"down too") if down else None

    config = """
route:
  receiver: hook
  group_by: [alertname, instance]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 4h
receivers:
  - name: hook
    webhook_configs: [{url: "%s/hook"}]
delivery:
  initial_backoff: 30s
  max_backoff: 1m
  max_held: 50
"""
    early = [alert(clock.time(), alertname="Early", instance=f"e{i}") for i in range(30)]
    with Recorder(handler=handler) as hook:
        async with harness(config % hook.url, tmp_path, clock) as h:
            h.outbox._db.conn.execute("PRAGMA query_only=ON")  # writes now fail, like a full disk
            await h.fire(*early)
            await h.run_for(60, step=5)
            # 20 of them end: each group's resolve supersedes its unsent page.
            await h.resolve(*early[:20])
            await h.run_for(60, step=5)
            held = [r for r in h.outbox.rows() if r.id < 0]
            assert len(held) == 30, "one notification per group, not one per flush"
            assert sum(r.notification.status.value == "resolved" for r in held) == 20

            # Many more alerts than memory may hold: firing pages push out the resolves first.
            late = [alert(clock.time(), alertname="Late", instance=f"l{i}") for i in range(300)]
            with structlog.testing.capture_logs() as logs:
                await h.fire(*late)
                await h.run_for(180, step=5)
            warnings = [e for e in logs if "were dropped" in e["event"]]
            assert 1 <= len(warnings) <= 4, "one line a minute at most, with the counts"
            assert warnings[0]["overflow"] >= 250
            held = [r for r in h.outbox.rows() if r.id < 0]
            assert len(held) <= 50 + 16, "max_held, plus at most the rows being sent"
            assert all(r.notification.status.value == "firing" for r in held)
            dropped = h.registry.get_sample_value(
                "soulwatch_notifications_dropped_total", {"reason": "overflow"}
            )
            assert dropped is not None
            assert dropped >= 280

            # Space and the receiver are back: every firing alert is paged.
            h.outbox._db.conn.execute("PRAGMA query_only=OFF")
            rejected = len(hook.received("/hook"))
            down = False
            await h.run_for(180, step=5)
            assert h.outbox.last_error is None
            assert h.outbox.held_in_memory == 0
            paged = {
                a["labels"]["instance"]
                for r in hook.received("/hook")[rejected:]
                for a in r.json()["alerts"]
                if a["status"] == "firing"
            }
    assert paged == {a.labels.get("instance") for a in [*early[20:], *late]}
