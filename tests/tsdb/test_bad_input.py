"""NaN, ±Inf, out-of-order and duplicate samples: what is stored, refused and counted."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from soulwatch.clock import SimulatedClock
from soulwatch.exceptions import StorageError
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.errors import (
    DuplicateSampleError,
    OutOfOrderSampleError,
    RejectReason,
    SampleTooOldError,
)
from soulwatch.tsdb.model import STALE_NAN, Labels, Matcher, is_stale_nan

T0 = 1_700_000_000_000
UP = Labels.of(__name__="up", job="api")
ALL = [Matcher.equal("job", "api")]


def _values(db: TSDB) -> list[tuple[int, float]]:
    return [(t, v) for s in db.select(ALL, 0, 2**62) for t, v in s]


def test_nan_and_infinities_are_stored_as_given(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    app = db.appender()
    for i, v in enumerate([math.nan, math.inf, -math.inf, STALE_NAN, -0.0]):
        app.append(UP, T0 + i, v)
    app.commit()
    db.maintain(force=True)  # through a chunk, too
    (nan, inf, ninf, stale, negzero) = [v for _, v in _values(db)]
    assert math.isnan(nan)
    assert not is_stale_nan(nan)
    assert inf == math.inf
    assert ninf == -math.inf
    assert is_stale_nan(stale)
    assert negzero == 0.0
    assert math.copysign(1.0, negzero) == -1.0


def test_out_of_order_sample_is_refused_and_the_rest_of_the_batch_kept(
    tmp_path, clock: SimulatedClock
) -> None:
    registry = CollectorRegistry()
    with TSDB(StorageConfig(path=tmp_path), clock=clock, registry=registry) as db:
        app = db.appender()
        app.append(UP, T0 + 2000, 1.0)
        app.commit()
        app = db.appender(strict=True)
        with pytest.raises(OutOfOrderSampleError, match=r'up\{job="api"\}: timestamp .* older'):
            app.append(UP, T0 + 1000, 5.0)
        other = Labels.of(__name__="other", job="api")
        app.append(other, T0 + 1000, 7.0)
        app.append(UP, T0 + 3000, 3.0)
        app.commit()
        assert sorted(_values(db)) == [(T0 + 1000, 7.0), (T0 + 2000, 1.0), (T0 + 3000, 3.0)]
        assert (
            registry.get_sample_value(
                "soulwatch_tsdb_samples_rejected_total", {"reason": "out_of_order"}
            )
            == 1
        )


def test_same_timestamp_same_value_is_ignored_a_different_value_refused(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    app = db.appender(strict=True)
    app.append(UP, T0, 1.0)
    app.append(UP, T0, 1.0)  # a retried sample: no error, stored once
    with pytest.raises(DuplicateSampleError, match="different value"):
        app.append(UP, T0, 2.0)
    app.commit()
    app.append(UP, T0, 1.0)  # the same again after the commit: still fine
    with pytest.raises(DuplicateSampleError):
        app.append(UP, T0, STALE_NAN)  # a staleness marker is a different value
    app.commit()
    assert _values(db) == [(T0, 1.0)]
    stats = db.stats()
    assert stats.samples_rejected == {RejectReason.DUPLICATE_TIMESTAMP: 2}
    assert stats.duplicates_ignored == 0  # the appender dropped them before commit


def test_conflicts_between_concurrent_batches_are_listed_after_commit(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    first, second = db.appender(), db.appender()
    first.append(UP, T0 + 10, 1.0)
    second.append(UP, T0 + 5, 2.0)  # fine when appended: nothing stored yet
    second.append(UP, T0 + 10, 9.0)
    second.append(Labels.of(__name__="ok", job="api"), T0, 4.0)
    first.commit()
    second.commit()
    reasons = [(r.t_ms, r.reason) for r in second.rejected]
    assert reasons == [
        (T0 + 5, RejectReason.OUT_OF_ORDER),
        (T0 + 10, RejectReason.DUPLICATE_TIMESTAMP),
    ]
    assert sorted(_values(db)) == [(T0, 4.0), (T0 + 10, 1.0)]
    db.close()  # the WAL holds exactly what was stored, not the refused samples
    assert sorted(_values(open_db())) == [(T0, 4.0), (T0 + 10, 1.0)]


def test_a_sample_older_than_retention_is_refused(open_db: Callable[..., TSDB]) -> None:
    db = open_db(retention_time=3600)
    app = db.appender(strict=True)
    with pytest.raises(SampleTooOldError, match="retention"):
        app.append(UP, T0 - 3_601_000, 1.0)
    app.append(UP, T0 - 3_599_000, 1.0)
    app.commit()
    assert _values(db) == [(T0 - 3_599_000, 1.0)]


def test_every_refusal_is_a_storage_error(open_db: Callable[..., TSDB]) -> None:
    # A scrape loop catches StorageError per sample and carries on.
    db = open_db()
    app = db.appender(strict=True)
    app.append(UP, T0, 1.0)
    app.commit()
    for t, v in [(T0 - 1, 1.0), (T0, 2.0)]:
        with pytest.raises(StorageError):
            app.append(UP, t, v)


def test_a_closed_store_refuses_to_commit(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    app = db.appender()
    app.append(UP, T0, 1.0)
    db.close()
    with pytest.raises(StorageError, match="closed"):
        app.commit()
    with pytest.raises(StorageError, match="closed"):
        db.maintain()
    with pytest.raises(StorageError, match="closed"):
        list(db.select([], 0, 1))


def test_by_default_refusals_are_listed_after_commit_not_raised(
    open_db: Callable[..., TSDB],
) -> None:
    # What a scrape loop sees: one commit, every valid sample stored, the rest accounted for.
    db = open_db(retention_time=3600)
    app = db.appender()
    app.append(UP, T0, 1.0)
    app.commit()
    assert app.rejected == []
    app.append(UP, T0 - 5, 2.0)  # out of order
    app.append(UP, T0, 3.0)  # another value at a stored timestamp
    app.append(Labels.of(__name__="old", job="api"), T0 - 7_200_000, 4.0)  # past retention
    app.append(UP, T0 + 15_000, STALE_NAN)
    app.commit()
    assert [(r.labels.name, r.t_ms, r.reason) for r in app.rejected] == [
        ("up", T0 - 5, RejectReason.OUT_OF_ORDER),
        ("up", T0, RejectReason.DUPLICATE_TIMESTAMP),
        ("old", T0 - 7_200_000, RejectReason.TOO_OLD),
    ]
    stored = _values(db)
    assert stored[0] == (T0, 1.0)
    assert is_stale_nan(stored[1][1])
    assert len(stored) == 2
    assert db.stats().samples_rejected == {
        RejectReason.OUT_OF_ORDER: 1,
        RejectReason.DUPLICATE_TIMESTAMP: 1,
        RejectReason.TOO_OLD: 1,
    }
