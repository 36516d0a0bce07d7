"""Heartbeat checks: healthchecks' schedule semantics, persistence, and metrics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.sources.heartbeats import (
    CheckStatus,
    HeartbeatCheckConfig,
    HeartbeatMonitor,
    HeartbeatsConfig,
    HeartbeatStore,
    ManagedByConfigError,
    NotPausedError,
    Ping,
    PingKind,
    PingOutcome,
)
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Matcher, is_stale_nan

UUID = "0b4a4e5c-1f3e-4d3a-9a63-0e6c3f7b1a11"


def _monitor(tmp_path: Path, **check: object) -> HeartbeatMonitor:
    spec = HeartbeatCheckConfig.model_validate({"name": "poller", "uuid": UUID, **check})
    config = HeartbeatsConfig(checks=[spec], ping_key="k" * 22, auto_create=True)
    return HeartbeatMonitor(HeartbeatStore(tmp_path / "hb.sqlite"), config)


def _latest(storage: MemoryStorage, name: str, **labels: str) -> float:
    matchers = [Matcher.equal("__name__", name)] + [Matcher.equal(k, v) for k, v in labels.items()]
    series = list(storage.select(matchers, 0, 2**62))
    assert len(series) == 1, f"expected one {name} series, got {len(series)}"
    return series[0].values[-1]


def test_period_and_grace(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="5m", grace="1m")
    check = mon.by_name("poller")
    assert check is not None
    assert check.status_at(clock.time()) is CheckStatus.NEW
    assert mon.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS)) is PingOutcome.OK
    clock.set_time(clock.time() + 299)
    assert check.status_at(clock.time()) is CheckStatus.UP
    clock.set_time(clock.time() + 30)
    assert check.status_at(clock.time()) is CheckStatus.GRACE
    assert mon.evaluate(clock.time()) == []
    clock.set_time(clock.time() + 31)
    flips = mon.evaluate(clock.time())
    assert [(f.old, f.new) for _, f in flips] == [(CheckStatus.GRACE, CheckStatus.DOWN)]
    # A ping after down resolves it.
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
    assert check.status_at(clock.time()) is CheckStatus.UP
    assert [f.new for f in mon.flips("poller")] == [
        CheckStatus.UP,
        CheckStatus.DOWN,
        CheckStatus.UP,
    ]


def test_fail_is_down_at_once_and_exit_codes(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="1h")
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
    mon.ping_uuid(UUID, Ping(clock.time() + 1, PingKind.FAIL, exit_status=3))
    check = mon.by_name("poller")
    assert check is not None
    assert check.status_at(clock.time() + 1) is CheckStatus.DOWN


def test_start_without_finish_within_grace_is_down(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="1h", grace="2m")
    now = clock.time()
    mon.ping_uuid(UUID, Ping(now, PingKind.SUCCESS))
    mon.ping_uuid(UUID, Ping(now + 10, PingKind.START, rid="r1"))
    assert mon.evaluate(now + 10 + 119) == []
    flips = mon.evaluate(now + 10 + 121)
    assert [f.new for _, f in flips] == [CheckStatus.DOWN]


def test_rid_pairs_start_with_its_end(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="1h")
    now = clock.time()
    mon.ping_uuid(UUID, Ping(now, PingKind.START, rid="a"))
    # A finish of another run does not close run "a".
    mon.ping_uuid(UUID, Ping(now + 5, PingKind.SUCCESS, rid="b"))
    check = mon.by_name("poller")
    assert check is not None
    assert check.last_duration is None
    assert check.last_start == now
    mon.ping_uuid(UUID, Ping(now + 7, PingKind.SUCCESS, rid="a"))
    assert check.last_duration == 7
    assert check.last_start is None


def test_cron_schedule_with_time_zone(tmp_path: Path) -> None:
    # 2023-11-14 23:13:20 in Paris; the job runs daily at 03:00 Paris time.
    mon = _monitor(tmp_path, schedule="0 3 * * *", tz="Europe/Paris", grace="10m")
    last = 1_700_000_000.0
    mon.ping_uuid(UUID, Ping(last, PingKind.SUCCESS))
    check = mon.by_name("poller")
    assert check is not None
    due = 1_700_013_600.0  # 2023-11-15 03:00 +01:00
    assert check.expected_at() == due
    assert check.status_at(due + 599) is CheckStatus.GRACE
    assert check.status_at(due + 601) is CheckStatus.DOWN


def test_log_changes_nothing_but_is_kept(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path)
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.LOG, body=b"x" * 20_000, method="POST"))
    check = mon.by_name("poller")
    assert check is not None
    assert check.status is CheckStatus.NEW
    [ping] = mon.pings("poller")
    assert ping.kind is PingKind.LOG
    assert len(ping.body) == 10_000  # the first max_body_bytes are kept


def test_slug_pings_need_the_ping_key_and_can_auto_create(tmp_path: Path) -> None:
    mon = _monitor(tmp_path)
    ping = Ping(1.0, PingKind.SUCCESS)
    assert mon.ping_slug("wrong", "poller", ping, create=False) is PingOutcome.NOT_FOUND
    assert mon.ping_slug("k" * 22, "poller", ping, create=False) is PingOutcome.OK
    assert mon.ping_slug("k" * 22, "backup", ping, create=False) is PingOutcome.NOT_FOUND
    assert mon.ping_slug("k" * 22, "backup", ping, create=True) is PingOutcome.CREATED
    assert mon.ping_slug("k" * 22, "backup", ping, create=True) is PingOutcome.OK
    created = mon.by_name("backup")
    assert created is not None
    assert created.source == "auto"
    # Two checks with one slug: the ping is refused, not guessed.
    mon.create(HeartbeatCheckConfig(name="Backup copy", slug="backup"), now=2.0)
    assert mon.ping_slug("k" * 22, "backup", ping, create=False) is PingOutcome.AMBIGUOUS


def test_state_survives_a_restart(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="1m", grace="1m")
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS, body=b"hello"))
    mon.create(HeartbeatCheckConfig(name="api-made", period=60), now=clock.time())
    mon.store.close()
    again = _monitor(tmp_path, period="1m", grace="1m")
    check = again.by_name("poller")
    assert check is not None
    assert check.last_ping == clock.time()
    assert check.status is CheckStatus.UP
    assert again.pings("poller")[0].body == b"hello"
    assert again.by_name("api-made") is not None


def test_config_checks_are_not_edited_through_the_api(tmp_path: Path) -> None:
    mon = _monitor(tmp_path)
    with pytest.raises(ManagedByConfigError):
        mon.delete("poller")
    mon.create(HeartbeatCheckConfig(name="mine"), now=0.0)
    mon.delete("mine")
    assert mon.by_name("mine") is None


def test_removed_from_config_is_removed(tmp_path: Path) -> None:
    mon = _monitor(tmp_path)
    mon.configure(HeartbeatsConfig(), now=0.0)
    assert mon.by_name("poller") is None


async def test_metrics_follow_the_checks(tmp_path: Path, clock: SimulatedClock) -> None:
    storage = MemoryStorage()
    mon = _monitor(tmp_path, period="1m", grace="30s")
    start = clock.time()
    mon.ping_uuid(UUID, Ping(start, PingKind.START))
    mon.ping_uuid(UUID, Ping(start + 4, PingKind.SUCCESS))
    mon.evaluate(clock.time(), storage)
    assert _latest(storage, "heartbeat_up", check="poller") == 1.0
    assert _latest(storage, "heartbeat_last_duration_seconds", check="poller") == 4.0
    ts = "heartbeat_last_ping_timestamp_seconds"
    assert _latest(storage, ts, check="poller", kind="success") == start + 4
    assert _latest(storage, ts, check="poller", kind="start") == start

    await clock.advance(95)
    mon.evaluate(clock.time(), storage)
    assert _latest(storage, "heartbeat_up", check="poller") == 0.0

    # A check that goes away ends its series with a staleness marker.
    mon.configure(HeartbeatsConfig(), now=clock.time())
    mon.evaluate(clock.time() + 1, storage)
    ended = list(storage.select([Matcher.equal("check", "poller")], 0, 2**62))
    assert len(ended) == 5  # up, paused, duration, last ping of success and of start
    assert all(is_stale_nan(s.values[-1]) for s in ended)
    assert all(not math.isnan(s.values[0]) for s in ended)


def test_a_declared_check_that_never_pings_goes_down_after_period_and_grace(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    mon = _monitor(tmp_path, period="10m", grace="5m")
    declared_at = clock.time()
    assert mon.evaluate(declared_at, storage) == []
    check = mon.by_name("poller")
    assert check is not None
    assert check.status_at(declared_at) is CheckStatus.NEW
    assert check.down_after() == declared_at + 900

    clock.set_time(declared_at + 601)
    assert check.status_at(clock.time()) is CheckStatus.GRACE
    assert mon.evaluate(clock.time(), storage) == []
    assert _latest(storage, "heartbeat_up", check="poller") == 1.0

    clock.set_time(declared_at + 900)
    flips = mon.evaluate(clock.time(), storage)
    assert [(f.old, f.new) for _, f in flips] == [(CheckStatus.GRACE, CheckStatus.DOWN)]
    assert _latest(storage, "heartbeat_up", check="poller") == 0.0

    # The first ping brings it up.
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.SUCCESS))
    assert mon.evaluate(clock.time(), storage) == []
    assert _latest(storage, "heartbeat_up", check="poller") == 1.0


def test_the_wait_for_a_first_ping_survives_a_restart(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    first = _monitor(tmp_path, period="10m", grace="5m")
    declared_at = clock.time()
    first.evaluate(declared_at)
    first.store.close()
    again = _monitor(tmp_path, period="10m", grace="5m")
    # The restart does not restart the wait.
    flips = again.evaluate(declared_at + 900)
    assert [f.new for _, f in flips] == [CheckStatus.DOWN]


def test_a_check_created_through_the_api_stays_new_until_pinged(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    mon = _monitor(tmp_path)
    spec = HeartbeatCheckConfig.model_validate({"name": "backup", "period": "1h"})
    mon.create(spec, clock.time())
    assert mon.evaluate(clock.time() + 10 * 3600) == []
    check = mon.by_name("backup")
    assert check is not None
    assert check.status_at(clock.time() + 10 * 3600) is CheckStatus.NEW


def test_a_paused_check_never_goes_down_and_its_next_ping_resumes_it(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    storage = MemoryStorage()
    mon = _monitor(tmp_path, period="1m", grace="1m")
    mon.ping_uuid(UUID, Ping(clock.time(), PingKind.FAIL))
    mon.evaluate(clock.time(), storage)
    assert _latest(storage, "heartbeat_up", check="poller") == 0.0

    check = mon.pause("poller", clock.time())
    assert check.status_at(clock.time() + 10 * 86400) is CheckStatus.PAUSED
    assert mon.evaluate(clock.time() + 10 * 86400, storage) == []
    # The alerting series reads up (a paused check does not alert) and says why.
    assert _latest(storage, "heartbeat_up", check="poller") == 1.0
    assert _latest(storage, "heartbeat_paused", check="poller") == 1.0
    last = mon.flips("poller")[0]
    assert (last.old, last.new) == (CheckStatus.DOWN, CheckStatus.PAUSED)

    # Paused is stored: a restart (and the config it re-applies) keeps it.
    mon.store.close()
    mon = _monitor(tmp_path, period="1m", grace="1m")
    paused = mon.by_name("poller")
    assert paused is not None
    assert paused.status is CheckStatus.PAUSED
    assert mon.evaluate(clock.time() + 20 * 86400) == []

    # A start does not end the pause (the run's end does), as in healthchecks.
    later = clock.time() + 20 * 86400
    mon.ping_uuid(UUID, Ping(later, PingKind.START))
    assert paused.status_at(later + 3600) is CheckStatus.PAUSED
    mon.ping_uuid(UUID, Ping(later + 5, PingKind.SUCCESS))
    assert paused.status_at(later + 5) is CheckStatus.UP
    assert mon.flips("poller")[0].old is CheckStatus.PAUSED
    mon.evaluate(later + 5, storage)
    assert _latest(storage, "heartbeat_paused", check="poller") == 0.0


def test_resume_waits_afresh_for_the_next_ping(tmp_path: Path, clock: SimulatedClock) -> None:
    mon = _monitor(tmp_path, period="10m", grace="5m")
    with pytest.raises(NotPausedError):
        mon.resume("poller", clock.time())
    mon.pause("poller", clock.time())
    resumed_at = clock.time() + 86400
    check = mon.resume("poller", resumed_at)
    assert check.status_at(resumed_at) is CheckStatus.NEW
    # A declared check is expected one period and grace after the resume, not at once.
    assert mon.evaluate(resumed_at + 899) == []
    assert [f.new for _, f in mon.evaluate(resumed_at + 900)] == [CheckStatus.DOWN]


def test_pings_leave_the_log_to_the_periodic_checkpoint(tmp_path: Path) -> None:
    # SQLite's automatic checkpoint (every 1,000 pages) ran in a ping's commit
    # and synced the database file: on a busy disk that ping waited seconds.
    mon = _monitor(tmp_path, period="1m", grace="1m")
    for n in range(600):
        assert mon.ping_uuid(UUID, Ping(1000.0 + n, PingKind.SUCCESS, body=b"x" * 2000)) is (
            PingOutcome.OK
        )
    # Every acknowledged ping is there for another reader before any checkpoint.
    reader = HeartbeatStore(tmp_path / "hb.sqlite")
    (check,) = reader.load()
    assert (check.n_pings, check.last_ping) == (600, 1599.0)
    reader.close()
    # No ping copied the log (its automatic checkpoint would have restarted it);
    # once the checkpoint has, the next ping starts it afresh.
    assert mon.checkpoint() > 1000
    mon.ping_uuid(UUID, Ping(1600.0, PingKind.SUCCESS))
    assert mon.checkpoint() < 20
    mon.store.close()
    again = _monitor(tmp_path, period="1m", grace="1m")
    assert again.pings("poller", limit=1)[0].t == 1600.0
