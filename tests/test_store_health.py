"""Store health: which of soulwatch's stores fail to write, as data and as a metric."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.store_health import StoreHealth


def test_failing_stores_are_named_and_exported_until_they_recover():
    errors: dict[str, str | None] = {"wal": None, "outbox": None}
    registry = CollectorRegistry()
    health = StoreHealth(
        {name: (lambda name=name: errors[name]) for name in errors}, registry=registry
    )
    assert health.failing() == {}
    errors["wal"] = "cannot write the WAL: [Errno 28] No space left on device"
    assert health.failing() == {"wal": errors["wal"]}
    text = generate_latest(registry).decode()
    assert 'soulwatch_store_failing{store="wal"} 1.0' in text
    assert 'soulwatch_store_failing{store="outbox"} 0.0' in text
    errors["wal"] = None
    assert health.failing() == {}
    assert 'soulwatch_store_failing{store="wal"} 0.0' in generate_latest(registry).decode()


def test_a_failing_store_says_since_when_until_it_recovers():
    now = [1000.0]
    errors: dict[str, str | None] = {"silences": None}
    health = StoreHealth({"silences": lambda: errors["silences"]}, clock=lambda: now[0])
    errors["silences"] = "cannot store the silence: no space left on device (data dir /d)"
    [(name, failure)] = health.failures().items()
    assert (name, failure.error, failure.since) == ("silences", errors["silences"], 1000.0)
    now[0] = 1060.0
    assert health.failures()["silences"].since == 1000.0, "since the first failure seen"
    errors["silences"] = None
    assert health.failures() == {}
    errors["silences"] = "cannot store the silence: disk I/O error (data dir /d)"
    assert health.failures()["silences"].since == 1060.0, "a new failure starts a new period"
