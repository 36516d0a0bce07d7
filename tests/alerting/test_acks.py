"""Acknowledgements: an acknowledged group is not repeated; anything newer, or its end, is sent."""

from __future__ import annotations

import pytest

from soulwatch.alerting.acks import AckStore
from soulwatch.exceptions import StorageError
from tests.alerting.support import alert, harness
from tests.helpers import Recorder

CONFIG = """
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 10m
receivers:
  - name: hook
    webhook_configs: [{{url: "{url}/hook", send_resolved: true}}]
"""


def _sent(rec: Recorder) -> list[tuple[str, list[str]]]:
    """``(status, firing instances)`` of every notification received."""
    out = []
    for r in rec.received("/hook"):
        body = r.json()
        firing = sorted(a["labels"]["instance"] for a in body["alerts"] if a["status"] == "firing")
        out.append((body["status"], firing))
    return out


async def test_acknowledged_group_stops_repeating_until_something_new(tmp_path, clock):
    acks = AckStore(tmp_path / "silences.sqlite", clock)
    with Recorder() as rec:
        async with harness(CONFIG.format(url=rec.url), tmp_path, clock, acks=acks) as h:
            a = alert(clock.time(), alertname="Down", instance="a")
            await h.fire(a)
            await h.run_for(30)
            assert _sent(rec) == [("firing", ["a"])]
            await h.run_for(11 * 60)
            assert len(_sent(rec)) == 2, "unacknowledged: repeated after repeat_interval"

            (key, _, _) = h.dispatcher.groups()[0]
            acks.acknowledge(key, "alice", "on it")
            await h.run_for(40 * 60)
            assert len(_sent(rec)) == 2, "acknowledged: no repeat"

            # A new alert in the group is news: it goes out, and the group repeats again.
            await h.fire(alert(clock.time(), alertname="Down", instance="b"))
            await h.run_for(90)
            assert _sent(rec)[-1] == ("firing", ["a", "b"])
            count = len(_sent(rec))
            await h.run_for(11 * 60)
            assert len(_sent(rec)) == count + 1

            # The recovery is always announced.
            await h.resolve(*h.firing.values())
            await h.run_for(90)
            assert _sent(rec)[-1][0] == "resolved"
    acks.close()


async def test_a_refiring_alert_after_resolution_pages_again(tmp_path, clock):
    acks = AckStore(tmp_path / "silences.sqlite", clock)
    with Recorder() as rec:
        async with harness(CONFIG.format(url=rec.url), tmp_path, clock, acks=acks) as h:
            a = alert(clock.time(), alertname="Down", instance="a")
            await h.fire(a)
            await h.run_for(30)
            (key, _, _) = h.dispatcher.groups()[0]
            acks.acknowledge(key, "alice")
            await h.resolve(a)
            await h.run_for(90)
            assert _sent(rec)[-1][0] == "resolved"
            # The next episode starts after the acknowledgement: it pages and repeats.
            await h.fire(alert(clock.time(), alertname="Down", instance="a"))
            await h.run_for(90)
            assert _sent(rec)[-1] == ("firing", ["a"])
            count = len(_sent(rec))
            await h.run_for(11 * 60)
            assert len(_sent(rec)) == count + 1
    acks.close()


def test_acknowledgements_survive_a_restart_and_need_a_name(tmp_path, clock):
    store = AckStore(tmp_path / "silences.sqlite", clock)
    with pytest.raises(ValueError, match="needs a name"):
        store.acknowledge('{}:{alertname="X"}', "  ")
    store.acknowledge('{}:{alertname="X"}', "bob", "looking")
    store.close()
    again = AckStore(tmp_path / "silences.sqlite", clock)
    ack = again.get('{}:{alertname="X"}')
    assert ack is not None
    assert (ack.by, ack.comment, ack.at) == ("bob", "looking", clock.time())
    assert [a.by for a in again.history(since=0)] == ["bob"]
    assert again.holds_repeat(ack.group_key, [clock.time() - 5])
    assert not again.holds_repeat(ack.group_key, [clock.time() + 5])
    again.close()


def test_an_acknowledgement_that_cannot_be_written_is_refused_then_recovers(tmp_path, clock):
    store = AckStore(tmp_path / "silences.sqlite", clock)
    store.acknowledge('{}:{alertname="X"}', "bob")
    store._db.execute("PRAGMA query_only=ON")  # writes now fail, as on a full disk
    with pytest.raises(StorageError, match=r"cannot record the acknowledgement: .*data dir"):
        store.acknowledge('{}:{alertname="Y"}', "carol")
    assert store.last_error is not None
    assert store.get('{}:{alertname="Y"}') is None, "not held as if it were stored"
    assert [a.by for a in store.list()] == ["bob"]
    store._db.execute("PRAGMA query_only=OFF")
    store.recheck()
    assert store.last_error is None
    store.close()
