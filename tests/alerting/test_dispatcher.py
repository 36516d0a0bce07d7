"""Grouping, timing, inhibition, silences and mutes, as Alertmanager's dispatcher does them."""

from __future__ import annotations

from datetime import UTC, datetime

from soulwatch.alerting.silences import PostableSilence, SilenceMatcher
from tests.alerting.support import alert, harness
from tests.helpers import Recorder


def _config(url: str, extra_route: str = "", extra: str = "", send_resolved: bool = True) -> str:
    return f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 1h
{extra_route}
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook", send_resolved: {str(send_resolved).lower()}}}]
{extra}
"""


def _bodies(rec: Recorder) -> list[dict]:
    return [r.json() for r in rec.received("/hook")]


def _fired(body: dict) -> list[str]:
    return sorted(a["labels"]["instance"] for a in body["alerts"] if a["status"] == "firing")


async def test_group_wait_batches_alerts_then_group_interval_adds_new_ones(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            t0 = clock.time()
            await h.fire(alert(t0, alertname="Down", instance="a"))
            await h.run_for(10)
            await h.fire(alert(t0 + 10, alertname="Down", instance="b"))
            await h.run_for(19)
            assert _bodies(rec) == [], "nothing before group_wait has passed"
            await h.run_for(2)
            bodies = _bodies(rec)
            assert len(bodies) == 1
            assert _fired(bodies[0]) == ["a", "b"]
            assert bodies[0]["groupLabels"] == {"alertname": "Down"}
            # A new alert joins the group: it waits for the next group_interval tick.
            await h.run_for(60)
            await h.fire(alert(clock.time(), alertname="Down", instance="c"))
            await h.run_for(200)
            assert len(_bodies(rec)) == 1
            await h.run_for(45)
            bodies = _bodies(rec)
            assert len(bodies) == 2
            assert _fired(bodies[1]) == ["a", "b", "c"]


async def test_unchanged_group_repeats_after_repeat_interval_only(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            t0 = clock.time()
            await h.fire(alert(t0, alertname="Down", instance="a"))
            # First flush at t0+30s; ticks every 5m. As in Alertmanager, a repeat goes out at
            # the first tick *strictly* after repeat_interval: t0+30s+1h is not, t0+30s+65m is.
            await h.run_for(3900, step=15)
            assert len(_bodies(rec)) == 1, "nothing changed: no repeat before repeat_interval"
            await h.run_for(60, step=15)
            assert len(_bodies(rec)) == 2, "one repeat at the first tick after 1h"


async def test_resolved_notification_and_group_cleanup(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            t0 = clock.time()
            await h.send(alert(t0, alertname="Down", instance="a"))
            await h.run_for(31)
            await h.send(alert(t0, clock.time(), alertname="Down", instance="a"))
            await h.run_for(300)
            bodies = _bodies(rec)
            assert [b["status"] for b in bodies] == ["firing", "resolved"]
            assert bodies[1]["alerts"][0]["endsAt"] != "0001-01-01T00:00:00Z"
            assert h.dispatcher.groups() == []


async def test_send_resolved_false_sends_no_resolved(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url, send_resolved=False), tmp_path, clock) as h:
            t0 = clock.time()
            await h.send(alert(t0, alertname="Down", instance="a"))
            await h.run_for(31)
            await h.send(alert(t0, clock.time(), alertname="Down", instance="a"))
            await h.run_for(600)
            assert [b["status"] for b in _bodies(rec)] == ["firing"]


async def test_group_by_all_labels_makes_one_group_per_alert(tmp_path, clock):
    with Recorder() as rec:
        cfg = _config(rec.url).replace("group_by: [alertname]", "group_by: ['...']")
        async with harness(cfg, tmp_path, clock) as h:
            t0 = clock.time()
            await h.send(
                alert(t0, alertname="Down", instance="a"), alert(t0, alertname="Down", instance="b")
            )
            await h.run_for(31)
            bodies = _bodies(rec)
            assert sorted(_fired(b)[0] for b in bodies) == ["a", "b"]
            assert all(len(b["alerts"]) == 1 for b in bodies)


async def test_alert_older_than_group_wait_goes_out_at_once(tmp_path, clock):
    # Alertmanager flushes a new group immediately when its alert started more than group_wait ago.
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            await h.send(alert(clock.time() - 120, alertname="Down", instance="a"))
            assert len(_bodies(rec)) == 1


INHIBIT = """
inhibit_rules:
  - source_matchers: ['severity="critical"']
    target_matchers: ['severity="warning"']
    equal: [cluster]
"""


async def test_inhibition_as_in_alertmanager_docs(tmp_path, clock):
    with Recorder() as rec:
        cfg = _config(rec.url, extra=INHIBIT).replace("group_by: [alertname]", "group_by: ['...']")
        async with harness(cfg, tmp_path, clock) as h:
            t0 = clock.time() - 60
            await h.send(
                alert(t0, alertname="DiskFull", severity="critical", cluster="eu", instance="x"),
                alert(t0, alertname="DiskFilling", severity="warning", cluster="eu", instance="y"),
                alert(t0, alertname="DiskFilling", severity="warning", cluster="us", instance="z"),
            )
            await h.run_for(31)
            sent = sorted(_fired(b)[0] for b in _bodies(rec))
            # The warning in the critical alert's cluster is muted; the other cluster's is not.
            assert sent == ["x", "z"]


async def test_silence_hides_alert_and_its_end_sends_at_once(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            now = clock.time()
            h.silences.create(
                PostableSilence(
                    matchers=[SilenceMatcher(name="alertname", value="Down", isRegex=False)],
                    startsAt=datetime.fromtimestamp(now, UTC),
                    endsAt=datetime.fromtimestamp(now + 600, UTC),
                    createdBy="ops",
                    comment="deploy",
                )
            )
            await h.fire(alert(now, alertname="Down", instance="a"))
            await h.run_for(599)
            assert _bodies(rec) == []
            await h.run_for(2)
            assert len(_bodies(rec)) == 1, "sent when the silence ended, not at the next tick"
            (row,) = h.outbox.rows()
            assert row.delivered_at == now + 600


async def test_expiring_a_silence_sends_immediately(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            now = clock.time()
            sid = h.silences.create(
                PostableSilence(
                    matchers=[SilenceMatcher(name="instance", value="a|b", isRegex=True)],
                    startsAt=datetime.fromtimestamp(now, UTC),
                    endsAt=datetime.fromtimestamp(now + 86400, UTC),
                    createdBy="ops",
                    comment="maintenance",
                )
            )
            await h.fire(alert(now, alertname="Down", instance="a"))
            await h.run_for(120)
            assert _bodies(rec) == []
            h.silences.expire(sid)
            await h.settle()
            assert len(_bodies(rec)) == 1


MUTE = """
time_intervals:
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}]
"""


async def test_mute_time_interval_end_sends_at_once(tmp_path, clock):
    with Recorder() as rec:
        cfg = _config(rec.url, extra=MUTE).replace(
            "  repeat_interval: 1h\n",
            "  repeat_interval: 1h\n  routes:\n    - matchers: [team=db]\n"
            "      mute_time_intervals: [nights]\n",
        )
        # 1_700_000_000 is 22:13:20 UTC: inside the mute.
        async with harness(cfg, tmp_path, clock) as h:
            await h.fire(alert(clock.time(), alertname="Slow", team="db", instance="a"))
            # 22:13:20 + 6390 s = 23:59:50: still muted.
            await h.run_for(6390, step=15)
            assert _bodies(rec) == []
            await h.run_for(30, step=15)
            assert len(_bodies(rec)) == 1, "sent when the mute ended at 00:00"


async def test_restart_does_not_notify_twice(tmp_path, clock):
    with Recorder() as rec:
        t0 = clock.time()
        a = alert(t0, alertname="Down", instance="a")
        async with harness(_config(rec.url), tmp_path, clock) as h:
            await h.fire(a)
            await h.run_for(31)
        assert len(_bodies(rec)) == 1
        async with harness(_config(rec.url), tmp_path, clock) as h:
            await h.fire(a)
            await h.run_for(120)
            assert len(_bodies(rec)) == 1, "the notification log survived the restart"
            await h.fire(alert(clock.time(), alertname="Down", instance="b"))
            await h.run_for(300)
            assert len(_bodies(rec)) == 2


async def test_inhibited_alert_goes_out_as_soon_as_the_source_resolves(tmp_path, clock):
    with Recorder() as rec:
        cfg = _config(rec.url, extra=INHIBIT).replace("group_by: [alertname]", "group_by: ['...']")
        async with harness(cfg, tmp_path, clock) as h:
            t0 = clock.time() - 60
            source = alert(
                t0, alertname="DiskFull", severity="critical", cluster="eu", instance="x"
            )
            target = alert(
                t0, alertname="DiskFilling", severity="warning", cluster="eu", instance="y"
            )
            await h.fire(source, target)
            await h.run_for(60)
            assert [_fired(b) for b in _bodies(rec)] == [["x"]]
            await h.resolve(source)
            await h.run_for(1)
            sent = [(b["status"], b["alerts"][0]["labels"]["instance"]) for b in _bodies(rec)]
            assert ("firing", "y") in sent, "not held until the next group_interval tick"
