"""Labels, matchers, staleness markers and the in-memory storage."""

import math

from soulwatch.tsdb import STALE_NAN, Labels, Matcher, MatchType, MemoryStorage, is_stale_nan


def test_labels_are_sorted_hashable_and_drop_empty_values() -> None:
    a = Labels.of(__name__="up", job="api", instance="", zone="b")
    b = Labels([("zone", "b"), ("job", "api"), ("__name__", "up")])
    assert a == b
    assert hash(a) == hash(b)
    assert a.names() == ["__name__", "job", "zone"]
    assert str(a) == 'up{job="api", zone="b"}'
    assert a.without_name() == Labels.of(job="api", zone="b")


def test_stale_marker_is_distinct_from_plain_nan() -> None:
    assert is_stale_nan(STALE_NAN)
    assert not is_stale_nan(math.nan)
    assert not is_stale_nan(1.0)


def test_regex_matchers_are_fully_anchored() -> None:
    m = Matcher(MatchType.REGEX, "job", "api|web")
    assert m.matches("api")
    assert m.matches("web")
    assert not m.matches("api2")
    assert Matcher(MatchType.NOT_REGEX, "job", "a.*").matches("")


def test_memory_storage_selects_by_matchers_and_time_range() -> None:
    store = MemoryStorage()
    app = store.appender()
    for t in range(0, 100_000, 10_000):
        app.append(Labels.of(__name__="x", job="a"), t, float(t))
        app.append(Labels.of(__name__="x", job="b"), t, -1.0)
    app.commit()
    got = list(store.select([Matcher.equal("job", "a")], 20_000, 40_000))
    assert len(got) == 1
    assert list(got[0]) == [(20_000, 20_000.0), (30_000, 30_000.0), (40_000, 40_000.0)]
    assert store.label_values("job") == ["a", "b"]
    assert store.label_names() == ["__name__", "job"]
