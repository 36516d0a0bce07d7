"""Episodes: a new episode of an alert is always a new page, with its own key."""

from __future__ import annotations

from tests.alerting.support import alert, harness
from tests.helpers import Recorder


def _config(url: str) -> str:
    return f"""
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 30s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook"}}]
"""


def _sent(rec: Recorder) -> list[tuple[str, str]]:
    return [(r.json()["status"], r.headers["idempotency-key"]) for r in rec.received("/hook")]


async def test_new_episode_pages_even_when_the_last_resolve_was_lost(tmp_path, clock):
    """The monitor stopped between a resolve and the group's flush (the resolve
    never reached the outbox); the alert's next episode must still page at once."""
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            first = alert(clock.time(), alertname="Down", instance="a")
            await h.fire(first)
            await h.run_for(5)
            assert [s for s, _ in _sent(rec)] == ["firing"]
            await h.resolve(first)
            await h.run_for(5)  # stopped before the next group_interval tick
        assert [s for s, _ in _sent(rec)] == ["firing"]
        async with harness(_config(rec.url), tmp_path, clock) as h:
            await h.run_for(60)
            await h.fire(alert(clock.time(), alertname="Down", instance="a"))
            await h.run_for(5)
            statuses = [s for s, _ in _sent(rec)]
            assert statuses == ["firing", "firing"], "the second episode paged"


async def test_every_episode_and_every_repeat_has_its_own_key(tmp_path, clock):
    with Recorder() as rec:
        async with harness(_config(rec.url), tmp_path, clock) as h:
            for _ in range(3):
                a = alert(clock.time(), alertname="Down", instance="a")
                await h.fire(a)
                await h.run_for(40)
                await h.resolve(a)
                await h.run_for(40)
            sent = _sent(rec)
            assert [s for s, _ in sent] == ["firing", "resolved"] * 3
            firing_keys = [k for s, k in sent if s == "firing"]
            assert len(set(firing_keys)) == 3, "one key per episode"
            assert len({k for _, k in sent}) == 6
            # A reminder after repeat_interval is a new notification: a new key.
            await h.fire(alert(clock.time(), alertname="Down", instance="b"))
            await h.run_for(3700, step=10)
            reminders = [k for s, k in _sent(rec)[6:] if s == "firing"]
            assert len(reminders) == 2
            assert reminders[0] != reminders[1]
