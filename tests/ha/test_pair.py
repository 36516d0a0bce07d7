"""An HA pair: two real ``soulwatch run`` processes, one real redis-server, one receiver.

What a user of the pair must see: one page per fault; a silence made on
either instance mutes both; the standby pages what the leader could not
after a ``kill -9``, within the lease time plus an evaluation interval, and
not what it already sent; with Redis gone both page, and one again once it
is back.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.alerting.run_support import MonitorProcess, Timing
from tests.ha.pair_support import (
    AUTH,
    INTERVAL,
    LEASE_TTL,
    firing_pages,
    ha_status,
    pair,
    quiet_for,
    resolved_pages,
)
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

TIMING = Timing(interval="1s", for_="0s", group_wait="0s", group_interval="2s")
# Long enough to kill the leader while the alert is pending.
PENDING = Timing(interval="1s", for_="4s", group_wait="0s", group_interval="2s")
# Long enough for a second page to arrive if one were coming: a lease and a half.
SETTLE = 1.5 * LEASE_TTL + 2 * INTERVAL


def _sent(proc: MonitorProcess) -> bool:
    """Whether ``proc`` counts a notification accepted by the receiver."""
    return bool(
        re.search(
            r'^soulwatch_notifications_total\{outcome="success",receiver="pager"\} 1\.0$',
            proc.get("/metrics").text,
            re.MULTILINE,
        )
    )


def test_a_fault_gives_exactly_one_page_and_one_resolve(world, browser):
    with pair(world, TIMING) as both:
        a, b = ha_status(both.a), ha_status(both.b)
        assert (a["mode"], b["mode"]) == ("leader", "standby")
        assert a["leader"] == b["leader"] == "a"
        assert {p["instance"] for p in b["peers"]} == {"a", "b"}
        assert a["redisReachable"] is True
        assert a["lastRenewal"] is not None
        # The console's Status page says the same, in a real browser.
        page = browser.new_page()
        page.goto(f"{both.b.base}/status")
        panel = page.locator("#ha").inner_text()
        page.close()
        assert "this instance\nb: standby (holds notifications; the leader sends)" in panel
        assert "leader\na (fencing token 1)" in panel
        assert "a (leader, seen" in panel
        assert "reachable" in panel

        world.target.on = True
        wait_until(lambda: firing_pages(world.hook), timeout=15, what="the page")
        wait_until(both.b.firing, timeout=10, what="the standby sees it firing too")
        quiet_for(SETTLE)
        assert len(firing_pages(world.hook)) == 1

        world.target.on = False
        wait_until(lambda: resolved_pages(world.hook), timeout=15, what="the resolve")
        quiet_for(SETTLE)
        assert len(resolved_pages(world.hook)) == 1
        assert len(firing_pages(world.hook)) == 1
        metrics = both.a.get("/metrics").text
        assert "soulwatch_ha_leader 1.0" in metrics
        assert "soulwatch_ha_redis_up 1.0" in metrics
        assert "soulwatch_ha_leader 0.0" in both.b.get("/metrics").text


def test_a_silence_made_on_the_standby_mutes_the_alert_on_both(world):
    with pair(world, TIMING) as both:
        now = datetime.now(UTC)
        silence = {
            "matchers": [{"name": "alertname", "value": "Broken", "isRegex": False}],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "test",
            "comment": "maintenance",
        }
        made = httpx.post(f"{both.b.base}/api/v2/silences", json=silence, headers=AUTH, timeout=5)
        assert made.status_code == 200, made.text
        sid = made.json()["silenceID"]
        wait_until(
            lambda: any(s["id"] == sid for s in both.a.get("/api/v2/silences").json()),
            timeout=10,
            what="the leader knows the silence",
        )

        world.target.on = True
        wait_until(both.a.firing, timeout=10, what="the leader sees it firing")
        wait_until(both.b.firing, timeout=10, what="the standby sees it firing")
        quiet_for(SETTLE)
        assert firing_pages(world.hook) == []

        # Expired on the leader: the standby learns it too, and the page goes out once.
        expired = httpx.delete(f"{both.a.base}/api/v2/silence/{sid}", headers=AUTH, timeout=5)
        assert expired.status_code == 200
        wait_until(lambda: firing_pages(world.hook), timeout=15, what="the page once unsilenced")
        wait_until(
            lambda: all(
                s["status"]["state"] == "expired" for s in both.b.get("/api/v2/silences").json()
            ),
            timeout=10,
            what="the standby knows the silence expired",
        )
        quiet_for(SETTLE)
        assert len(firing_pages(world.hook)) == 1


def test_kill_9_of_the_leader_while_pending_makes_the_standby_page(world, capsys):
    with pair(world, PENDING) as both:
        world.target.on = True
        wait_until(
            lambda: any(
                x["state"] == "pending"
                for x in both.a.get("/api/v1/alerts").json()["data"]["alerts"]
            ),
            timeout=10,
            what="the leader's alert pending",
        )
        both.a.kill9()
        killed = time.time()
        wait_until(lambda: firing_pages(world.hook), timeout=20, what="the standby's page")
        paged = world.hook.received("/page")[0].received_at
        # startsAt is when the alert fired (the end of its ``for``).
        firing_at = datetime.fromisoformat(
            firing_pages(world.hook)[0]["alerts"][0]["startsAt"].replace("Z", "+00:00")
        ).timestamp()
        status = ha_status(both.b)
        assert (status["mode"], status["leader"]) == ("leader", "b")
        # Due when the alert fired (startsAt + for) or when the lease ran out, whichever
        # is later; then sent within one evaluation interval (and a little scheduling).
        due = max(firing_at, killed + LEASE_TTL)
        with capsys.disabled():
            print(
                f"\nkill -9 of the leader while pending: page {paged - killed:.2f}s "
                f"after the kill, {paged - due:+.2f}s after it was due"
            )
        assert paged - due <= INTERVAL + 1.0
        quiet_for(SETTLE)
        assert len(firing_pages(world.hook)) == 1


def test_kill_9_of_the_leader_just_after_a_page_gives_no_second_page(world, capsys):
    with pair(world, TIMING) as both:
        world.target.on = True
        # Killed the moment the leader has learnt the receiver accepted the page. (Between
        # the receiver's answer and that moment, a kill may still cause a second page.)
        wait_until(lambda: _sent(both.a), timeout=15, interval=0.01, what="the page")
        both.a.kill9()
        killed = time.time()
        wait_until(
            lambda: ha_status(both.b)["mode"] == "leader",
            timeout=10,
            interval=0.05,
            what="the standby takes over",
        )
        with capsys.disabled():
            print(f"\ntakeover {time.time() - killed:.2f}s after kill -9 (lease {LEASE_TTL}s)")
        quiet_for(SETTLE)
        assert len(firing_pages(world.hook)) == 1
        # The new leader still resolves the episode it did not page itself.
        world.target.on = False
        wait_until(lambda: resolved_pages(world.hook), timeout=15, what="the resolve")
        quiet_for(2 * INTERVAL)
        assert len(resolved_pages(world.hook)) == 1


def test_without_redis_both_page_and_one_pages_again_once_it_is_back(world):
    with pair(world, TIMING) as both:
        world.redis.stop()
        wait_until(
            lambda: both.modes() == ("solo", "solo"), timeout=10, what="both notice Redis is gone"
        )
        status = ha_status(both.b)
        assert (status["redisReachable"], status["notifying"]) == (False, True)
        assert "soulwatch_ha_redis_up 0.0" in both.b.get("/metrics").text
        assert "every instance notifies on its own" in both.a.get("/status").text

        world.target.on = True
        wait_until(lambda: len(firing_pages(world.hook)) >= 2, timeout=15, what="two pages")
        world.target.on = False
        wait_until(lambda: len(resolved_pages(world.hook)) >= 2, timeout=15, what="two resolves")
        quiet_for(2 * INTERVAL)
        assert (len(firing_pages(world.hook)), len(resolved_pages(world.hook))) == (2, 2)

        world.redis.start()
        both.settled(timeout=15)
        world.target.on = True
        wait_until(lambda: len(firing_pages(world.hook)) >= 3, timeout=15, what="the next page")
        quiet_for(SETTLE)
        assert len(firing_pages(world.hook)) == 3
