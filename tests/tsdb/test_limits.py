"""Series limits per source and in total: new series over a limit are refused and counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import SeriesLimitError
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.errors import RejectReason
from soulwatch.tsdb.model import Labels, Matcher

T0 = 1_700_000_000_000


def _lbls(job: str, i: int) -> Labels:
    return Labels.of(__name__="m", job=job, i=str(i))


def _open(tmp_path: Path, clock: SimulatedClock, registry: CollectorRegistry, **kw: int) -> TSDB:
    return TSDB(StorageConfig(path=tmp_path, **kw), clock=clock, registry=registry)


def test_per_source_and_total_limits_refuse_and_count(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    registry = CollectorRegistry()
    with _open(tmp_path, clock, registry, series_limit_total=5, series_limit_per_source=3) as db:
        a = db.appender(source="a/1", strict=True)
        for i in range(3):
            a.append(_lbls("a", i), T0, 1.0)
        with pytest.raises(SeriesLimitError, match=r"series_limit_per_source \(3\).*'a/1'"):
            a.append(_lbls("a", 3), T0, 1.0)
        a.commit()
        # Known series keep taking samples at the limit.
        a.append(_lbls("a", 0), T0 + 1, 2.0)
        a.commit()

        b = db.appender(source="b/1", strict=True)
        b.append(_lbls("b", 0), T0, 1.0)
        b.append(_lbls("b", 1), T0, 1.0)
        with pytest.raises(SeriesLimitError, match=r"series_limit_total \(5\)"):
            b.append(_lbls("b", 2), T0, 1.0)
        b.commit()
        # No source: the per-source limit does not apply, the total one does.
        with pytest.raises(SeriesLimitError, match="series_limit_total"):
            db.appender(strict=True).append(_lbls("rules", 0), T0, 1.0)

        assert len(db.series([Matcher.equal("__name__", "m")], T0, T0 + 1)) == 5
        value = registry.get_sample_value
        assert value("soulwatch_tsdb_series_rejected_total", {"limit": "per_source"}) == 1
        assert value("soulwatch_tsdb_series_rejected_total", {"limit": "total"}) == 2
        assert value("soulwatch_tsdb_head_series") == 5
        text = generate_latest(registry).decode()
        assert 'soulwatch_tsdb_series_rejected_total{limit="total"} 2.0' in text


def test_a_limit_filled_by_another_batch_is_enforced_at_commit(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    registry = CollectorRegistry()
    with _open(tmp_path, clock, registry, series_limit_total=1) as db:
        first, second = db.appender(), db.appender()
        first.append(_lbls("x", 0), T0, 1.0)
        second.append(_lbls("y", 0), T0, 1.0)  # nothing committed yet: accepted for now
        first.commit()
        second.commit()
        assert [(r.labels, r.reason) for r in second.rejected] == [
            (_lbls("y", 0), RejectReason.SERIES_LIMIT)
        ]
        assert db.label_values("job") == ["x"]
        assert (
            registry.get_sample_value("soulwatch_tsdb_series_rejected_total", {"limit": "total"})
            == 1
        )


def test_no_collector_is_registered_without_a_registry(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    from prometheus_client import REGISTRY

    before = set(REGISTRY._names_to_collectors)
    with TSDB(StorageConfig(path=tmp_path), clock=clock):
        assert set(REGISTRY._names_to_collectors) == before


def test_closing_unregisters_the_collector(tmp_path: Path, clock: SimulatedClock) -> None:
    registry = CollectorRegistry()
    with _open(tmp_path, clock, registry):
        assert registry.get_sample_value("soulwatch_tsdb_head_series") == 0
    assert registry.get_sample_value("soulwatch_tsdb_head_series") is None


def test_by_default_a_refused_series_is_listed_and_the_batch_commits(
    tmp_path: Path, clock: SimulatedClock
) -> None:
    registry = CollectorRegistry()
    with _open(tmp_path, clock, registry, series_limit_per_source=2) as db:
        app = db.appender(source="t/1")
        for i in range(4):
            app.append(_lbls("t", i), T0, float(i))
        app.commit()
        assert [(r.labels.get("i"), r.reason) for r in app.rejected] == [
            ("2", RejectReason.SERIES_LIMIT),
            ("3", RejectReason.SERIES_LIMIT),
        ]
        assert db.label_values("i") == ["0", "1"]
        assert (
            registry.get_sample_value(
                "soulwatch_tsdb_series_rejected_total", {"limit": "per_source"}
            )
            == 2
        )
