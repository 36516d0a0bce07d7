"""The silence store: Alertmanager v2 shapes, expiry, recurring windows, persistence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from soulwatch.alerting.silences import PostableSilence, SilenceState, SilenceStore
from soulwatch.exceptions import ConfigError, StorageError
from soulwatch.tsdb.model import Labels


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _post(clock, start: float, end: float, **extra) -> PostableSilence:
    return PostableSilence.model_validate(
        {
            "matchers": [
                {"name": "alertname", "value": "Down", "isRegex": False, "isEqual": True},
                {"name": "env", "value": "prod|stage", "isRegex": True},
            ],
            "startsAt": _iso(clock.time() + start),
            "endsAt": _iso(clock.time() + end),
            "createdBy": "alice",
            "comment": "deploy",
            **extra,
        }
    )


def test_create_list_get_expire_in_v2_shapes(tmp_path, clock):
    store = SilenceStore(tmp_path / "s.db", clock)
    active = store.create(_post(clock, 0, 3600))
    pending = store.create(_post(clock, 600, 3600))
    body = store.get(active).api_json()
    assert set(body) == {
        "id",
        "matchers",
        "startsAt",
        "endsAt",
        "createdBy",
        "comment",
        "status",
        "updatedAt",
    }
    assert body["status"] == {"state": "active"}
    assert body["matchers"][1] == {
        "name": "env",
        "value": "prod|stage",
        "isRegex": True,
        "isEqual": True,
    }
    assert store.get(pending).status.state is SilenceState.PENDING
    labels = Labels.of(alertname="Down", env="stage")
    assert store.mutes(labels) == [active]
    assert store.mutes(Labels.of(alertname="Down", env="dev")) == []
    store.expire(active)
    assert store.get(active).status.state is SilenceState.EXPIRED
    assert store.mutes(labels) == []
    assert [s.status.state for s in store.list()] == [SilenceState.PENDING, SilenceState.EXPIRED]
    store.close()
    # Nothing stored is lost on restart.
    again = SilenceStore(tmp_path / "s.db", clock)
    assert {s.id for s in again.list()} == {active, pending}
    with pytest.raises(KeyError):
        again.expire("nope")


def test_bad_silences_are_rejected(tmp_path, clock):
    store = SilenceStore(tmp_path / "s.db", clock)
    with pytest.raises(ConfigError, match="end after it starts"):
        store.create(_post(clock, 100, 50))
    with pytest.raises(ConfigError, match="in the past"):
        store.create(_post(clock, -100, -50))
    with pytest.raises(ValueError, match="empty string"):
        PostableSilence.model_validate(
            {
                "matchers": [{"name": "a", "value": ".*", "isRegex": True}],
                "startsAt": _iso(0),
                "endsAt": _iso(1),
                "createdBy": "x",
                "comment": "y",
            }
        )


def test_recurring_maintenance_window(tmp_path, clock):
    # The clock starts at 22:13:20 UTC; the window is 23:00-23:30 every day for a week.
    store = SilenceStore(tmp_path / "s.db", clock)
    sid = store.create(
        _post(
            clock,
            0,
            7 * 86400,
            schedule=[{"times": [{"start_time": "23:00", "end_time": "23:30"}]}],
        )
    )
    labels = Labels.of(alertname="Down", env="prod")
    assert store.mutes(labels) == []
    t = clock.time()
    assert store.mutes(labels, t + 47 * 60) == [sid]  # 23:00:20
    assert store.mutes(labels, t + 77 * 60) == []  # 23:30:20
    assert store.mutes(labels, t + 86400 + 47 * 60) == [sid]  # next day
    # The dispatcher is told when the window closes (23:30), to send then.
    assert store.next_transition([sid], t + 47 * 60) == t + 76 * 60 + 40
    assert store.get(sid).api_json()["schedule"][0]["times"] == [
        {"start_time": "23:00", "end_time": "23:30"}
    ]


@pytest.mark.parametrize(("is_equal", "op"), [(True, "=~"), (False, "!~")])
def test_a_bad_regex_is_a_value_error_naming_the_matcher(is_equal: bool, op: str) -> None:
    from soulwatch.alerting.silences import SilenceMatcher

    matcher = SilenceMatcher(name="env", value="prod|(stage", isRegex=True, isEqual=is_equal)
    with pytest.raises(ValueError, match=rf"matcher env{op}'prod\|\(stage': invalid regular"):
        matcher.to_matcher()


def test_a_silence_with_a_bad_regex_fails_validation_naming_the_matcher(clock) -> None:
    from pydantic import ValidationError

    bad = [{"name": "job", "value": "[", "isRegex": True}]
    with pytest.raises(ValidationError, match=r"matcher job=~'\[': invalid regular expression"):
        _post(clock, 0, 60, matchers=bad)


def test_max_duration_refuses_a_longer_silence_and_says_the_limit(tmp_path, clock):
    store = SilenceStore(tmp_path / "s.db", clock, max_duration=3600)
    store.create(_post(clock, 0, 3600))
    with pytest.raises(ConfigError, match=r"at most 3600s \(silences.max_duration\)"):
        store.create(_post(clock, 0, 7200))
    assert len(store.list()) == 1


def test_expired_silences_are_forgotten_after_the_retention(tmp_path, clock):
    store = SilenceStore(tmp_path / "s.db", clock, retention=86400)
    now = clock.time()
    short = store.create(_post(clock, 0, 600))
    long = store.create(_post(clock, 0, 3 * 86400))
    clock.set_time(now + 600 + 86400 - 1)
    assert store.prune() == 0
    assert store.get(short).status.state is SilenceState.EXPIRED
    clock.set_time(now + 600 + 86400 + 1)
    assert store.prune() == 1
    assert [s.id for s in store.list()] == [long]


def test_a_silence_that_cannot_be_written_is_refused_and_the_stored_ones_keep_muting(
    tmp_path, clock
):
    store = SilenceStore(tmp_path / "s.db", clock)
    kept = store.create(_post(clock, 0, 3600))
    store._db.execute("PRAGMA query_only=ON")  # writes now fail, as on a full disk
    with pytest.raises(StorageError, match=r"cannot store the silence: .*readonly.*\(data dir "):
        store.create(_post(clock, 0, 600))
    assert store.last_error is not None
    assert store.last_error.startswith("cannot store the silence: ")
    assert [s.id for s in store.list()] == [kept], "nothing stored is lost"
    assert store.mutes(Labels.of(alertname="Down", env="prod")) == [kept]
    store.recheck()
    assert store.last_error is not None, "still failing: the probe write failed too"
    store._db.execute("PRAGMA query_only=OFF")
    store.recheck()
    assert store.last_error is None, "recovered without anyone writing a silence"
    assert store.create(_post(clock, 0, 600))
    store.close()
