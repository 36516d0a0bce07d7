"""The coordinator of one instance against a real redis-server, in process.

Two coordinators stand for two instances: the lease, its fencing token, the
gate the outbox asks before each send, and the silences and acknowledgements
they share.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import structlog
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.alerting.acks import AckStore
from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.alerting.outbox import SendDecision
from soulwatch.alerting.silences import PostableSilence, SilenceMatcher, SilenceStore
from soulwatch.clock import SystemClock
from soulwatch.ha.config import HaConfig
from soulwatch.ha.coordinator import HaCoordinator, Mode, redis_client
from soulwatch.runner import run_inline
from tests.helpers import RedisServer, free_port


@pytest.fixture
def redis():
    with RedisServer() as server:
        yield server


def _instance(
    tmp: Path, name: str, url: str, registry: CollectorRegistry | None = None
) -> HaCoordinator:
    home = tmp / name
    home.mkdir()
    clock = SystemClock()
    silences = SilenceStore(home / "silences.sqlite", clock)
    return HaCoordinator(
        HaConfig(redis_url=url, lease_ttl=3.0, instance=name),
        client=redis_client(url, 0.5),
        instance=name,
        url=url,
        clock=clock,
        runner=run_inline,
        silences=silences,
        acks=AckStore(home / "silences.sqlite", clock),
        evaluation_interval=1.0,
        registry=registry or CollectorRegistry(),
    )


#: A recent time (the shared log forgets what is older than its retention).
T0 = round(time.time())


def _page(status: Status = Status.FIRING, starts: float = T0) -> Notification:
    alert = AlertInfo(status, {"alertname": "Broken"}, {}, starts, None, "fp1")
    return Notification(
        receiver="pager",
        integration="pager/webhook/0",
        group_key='{}:{alertname="Broken"}',
        group_labels={"alertname": "Broken"},
        status=status,
        alerts=[alert],
        external_url="",
        created_at=starts,
        idempotency_key="k",
    )


async def test_one_leads_the_other_holds_and_a_later_leader_has_a_larger_token(tmp_path, redis):
    a, b = _instance(tmp_path, "a", redis.url), _instance(tmp_path, "b", redis.url)
    await a.tick()
    await b.tick()
    assert (a.mode, b.mode) == (Mode.LEADER, Mode.STANDBY)
    assert b.status()["leader"] == "a"
    assert (await a.before_send(_page(), T0))[0] is SendDecision.SEND
    assert (await b.before_send(_page(), T0))[0] is SendDecision.HOLD
    first = a.lease.held.token

    # A clean stop gives the lease back: the standby takes it at its next tick.
    await a.release()
    await b.tick()
    assert b.mode is Mode.LEADER
    assert b.lease.held.token > first
    # The old leader, not knowing yet, is refused by the fencing check right before sending.
    a.mode = Mode.LEADER
    a.lease.held = type(b.lease.held)(first, "a")
    assert (await a.before_send(_page(), T0))[0] is SendDecision.HOLD
    assert a.mode is Mode.STANDBY
    for c in (a, b):
        await c.aclose()


async def test_what_the_leader_sent_is_not_sent_again_by_the_standby(tmp_path, redis):
    a, b = _instance(tmp_path, "a", redis.url), _instance(tmp_path, "b", redis.url)
    await a.tick()
    await b.tick()
    await a.delivered(_page(starts=T0), at=T0 + 1)
    await b.tick()
    # The standby's own episode started a moment later (it evaluates on its own).
    decision, why = await b.before_send(_page(starts=T0 + 0.8), T0 + 0.9)
    assert decision is SendDecision.SKIP
    assert "a" in why
    # A resolve was not sent: that one the standby keeps.
    resolve = _page(Status.RESOLVED, T0 + 0.8)
    assert (await b.before_send(resolve, T0 + 2))[0] is SendDecision.HOLD
    # The dispatcher's log entry counts the peer's page as sent.
    mine = f"fp1@{T0 + 0.8:.3f}"
    entry = b.merged("pager/webhook/0", _page().group_key, None, [(mine, False)])
    assert entry is not None
    assert mine in entry.firing
    # A page the leader sent long before this one was queued is a repeat that is due.
    assert (await b.before_send(_page(starts=T0), T0 + 3600))[0] is SendDecision.HOLD
    for c in (a, b):
        await c.aclose()


async def test_without_redis_both_notify_and_say_so_once(tmp_path, redis):
    registry = CollectorRegistry()
    a, b = _instance(tmp_path, "a", redis.url), _instance(tmp_path, "b", redis.url, registry)
    await a.tick()
    await b.tick()
    redis.stop()
    with structlog.testing.capture_logs() as logs:
        # Solo once Redis has failed for a whole lease time (3 s), not at the first error.
        await a.tick()
        await b.tick()
        assert (a.mode, b.mode) == (Mode.LEADER, Mode.STANDBY)
        deadline = time.monotonic() + 6
        while Mode.SOLO not in (a.mode, b.mode) or a.mode is not b.mode:
            assert time.monotonic() < deadline, "still not solo"
            await asyncio.sleep(0.2)
            await a.tick()
            await b.tick()
    assert (a.mode, b.mode) == (Mode.SOLO, Mode.SOLO)
    assert (await b.before_send(_page(), T0))[0] is SendDecision.SEND
    said = [e for e in logs if "redis unreachable" in e["event"]]
    assert len(said) == 2  # one per instance, not one per tick
    metrics = generate_latest(registry).decode()
    assert "soulwatch_ha_redis_up 0.0" in metrics
    assert "soulwatch_ha_notifying 1.0" in metrics
    redis.start()
    await a.tick()
    await b.tick()
    assert sorted([a.mode.value, b.mode.value]) == ["leader", "standby"]
    for c in (a, b):
        await c.aclose()


async def test_silences_and_acknowledgements_made_on_one_reach_the_other(tmp_path, redis):
    a, b = _instance(tmp_path, "a", redis.url), _instance(tmp_path, "b", redis.url)
    now = datetime.now(UTC)
    sid = b._stores._silences.create(
        PostableSilence(
            matchers=[SilenceMatcher(name="alertname", value="Broken", isRegex=False)],
            startsAt=now,
            endsAt=now + timedelta(hours=1),
            createdBy="oncall",
            comment="deploy",
        )
    )
    # Whatever else is in Redis under that key (a bad write, another version) is skipped.
    garbage = redis_client(redis.url, 0.5)
    await garbage.hset(
        "soulwatch:ha:silences",
        mapping={"x": "not json", "y": '["y", "[{\\"name\\": 1}]", 0, 1e12, "a", "b", null, 1]'},
    )
    await garbage.aclose()
    b._stores._acks.acknowledge('{}:{alertname="Broken"}', "oncall", "on it")
    await b.tick()
    await a.tick()
    assert a._stores._silences.get(sid).created_by == "oncall"
    assert [x.id for x in a._stores._silences.list()] == [sid]
    ack = a._stores._acks.get('{}:{alertname="Broken"}')
    assert ack is not None
    assert ack.comment == "on it"
    a._stores._silences.expire(sid)
    await a.tick()
    await b.tick()
    assert b._stores._silences.get(sid).status.state.value == "expired"
    for c in (a, b):
        await c.aclose()


async def test_the_password_of_the_redis_url_is_never_shown(tmp_path):
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
    a = _instance(tmp_path, "a", url)
    with structlog.testing.capture_logs() as logs:
        await a.tick()
    assert a.mode is Mode.SOLO
    shown = str(a.status())
    assert "hunter2" not in shown
    assert "127.0.0.1" in shown
    assert logs
    assert "hunter2" not in str(logs)
    await a.aclose()
