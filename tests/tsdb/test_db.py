"""The embedded TSDB answers like the in-memory reference, across head and persisted chunks."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

from soulwatch.promql.engine import Engine
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels, Matcher, MatchType, Series
from soulwatch.tsdb.storage import ArrayStorage, Storage

T0 = 1_700_000_000_000  # the simulated clock's start, in ms

MATCHER_SETS = [
    [Matcher.equal("__name__", "http_requests_total")],
    [Matcher(MatchType.REGEX, "job", "api|web")],
    [Matcher(MatchType.NOT_EQUAL, "job", "api"), Matcher.equal("__name__", "up")],
    [Matcher(MatchType.NOT_REGEX, "code", "5.."), Matcher(MatchType.REGEX, "__name__", ".+")],
    [Matcher(MatchType.REGEX, "code", "")],  # series without a code label
    [Matcher(MatchType.REGEX, "instance", "h[0-2]"), Matcher(MatchType.NOT_EQUAL, "code", "")],
    [Matcher.equal("job", "nope")],
]


def _workload(seed: int) -> list[tuple[Labels, int, float]]:
    rng = random.Random(seed)
    label_sets = []
    for job in ("api", "web", "worker"):
        for inst in range(4):
            base = {"job": job, "instance": f"h{inst}"}
            label_sets.append(Labels.of(base, __name__="up"))
            for code in ("200", "404", "500"):
                label_sets.append(Labels.of(base, __name__="http_requests_total", code=code))
    samples = []
    for step in range(300):
        t = T0 + step * 15_000 + rng.randint(0, 50)
        for lbls in label_sets:
            if rng.random() < 0.9:
                value = STALE_NAN if rng.random() < 0.02 else float(rng.randint(0, 10**6)) / 8
                samples.append((lbls, t, value))
    return samples


def _load(storage: Storage, samples: list[tuple[Labels, int, float]], batch: int = 37) -> None:
    for i in range(0, len(samples), batch):
        app = storage.appender()
        for lbls, t, v in samples[i : i + batch]:
            app.append(lbls, t, v)
        app.commit()


def _dump(series: list[Series]) -> list[tuple[Labels, list[int], list[bytes]]]:
    return [(s.labels, s.timestamps, [struct.pack("<d", v) for v in s.values]) for s in series]


def _assert_same(db: TSDB, ref: MemoryStorage, mint: int, maxt: int) -> None:
    for matchers in MATCHER_SETS:
        got = list(db.select(matchers, mint, maxt))
        want = list(ref.select(matchers, mint, maxt))
        assert _dump(got) == _dump(want), matchers
        # What the query engine reads: the same samples, in 64-bit and float arrays.
        arrays = list(db.select_arrays(matchers, mint, maxt))
        assert {(s.timestamps.typecode, memoryview(s.values).format) for s in arrays} <= {
            ("q", "d")
        }
        # Values are read-only views (of the head's own buffers, or of a fresh copy).
        assert all(memoryview(s.values).readonly for s in arrays)
        as_lists = [Series(s.labels, s.timestamps.tolist(), s.values.tolist()) for s in arrays]
        assert _dump(as_lists) == _dump(want), matchers
        assert db.series(matchers, mint, maxt) == ref.series(matchers, mint, maxt)


def test_the_tsdb_implements_the_storage_protocol(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    assert isinstance(db, Storage)
    # ... and hands the query engine arrays; the in-memory reference does not.
    assert isinstance(db, ArrayStorage)
    assert not isinstance(MemoryStorage(), ArrayStorage)


def test_queries_match_the_reference_across_head_and_chunks(open_db: Callable[..., TSDB]) -> None:
    db = open_db(chunk_samples=32)
    ref = MemoryStorage()
    samples = _workload(1)
    half = len(samples) // 2
    _load(db, samples[:half])
    _load(ref, samples[:half])
    report = db.maintain()  # full 32-sample runs go to SQLite, the rest stays in the head
    assert report.chunks_written > 0
    assert db.stats().head_samples > 0
    _load(db, samples[half:])
    _load(ref, samples[half:])
    end = T0 + 300 * 15_000
    for mint, maxt in [(T0, end), (T0 + 1_000_000, T0 + 2_000_000), (T0 + 777, T0 + 778)]:
        _assert_same(db, ref, mint, maxt)
    db.maintain(force=True)
    assert db.stats().head_samples == 0
    _assert_same(db, ref, T0, end)
    _assert_same(db, ref, T0 + 1_234_567, T0 + 3_000_000)


def test_restart_returns_every_committed_sample(open_db: Callable[..., TSDB]) -> None:
    db = open_db(chunk_samples=50)
    ref = MemoryStorage()
    samples = _workload(2)
    third = len(samples) // 3
    _load(db, samples[:third])
    db.maintain()
    _load(db, samples[third:])
    _load(ref, samples)
    db.close()

    reopened = open_db(chunk_samples=50)
    assert reopened.replay.samples_replayed > 0
    assert reopened.replay.series_loaded > 0
    assert reopened.replay.truncated_bytes == 0
    _assert_same(reopened, ref, T0, T0 + 10**8)
    # And it keeps going: new samples land after the recovered ones.
    app = reopened.appender()
    lbls = Labels.of(__name__="up", job="api", instance="h0")
    app.append(lbls, T0 + 10**7, 1.0)
    app.commit()
    (up,) = reopened.select(
        [
            Matcher.equal("job", "api"),
            Matcher.equal("instance", "h0"),
            Matcher.equal("__name__", "up"),
        ],
        T0,
        T0 + 10**8,
    )
    assert up.timestamps[-1] == T0 + 10**7


def test_label_names_and_values(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    ref = MemoryStorage()
    samples = _workload(3)[:500]
    _load(db, samples)
    _load(ref, samples)
    assert db.label_names() == ref.label_names() == ["__name__", "code", "instance", "job"]
    assert db.label_values("code") == ["200", "404", "500"]
    up = [Matcher.equal("__name__", "up")]
    assert db.label_names(up) == ref.label_names(up) == ["__name__", "instance", "job"]
    assert db.label_values("job", up, T0, T0 + 60_000) == ref.label_values(
        "job", up, T0, T0 + 60_000
    )
    assert db.label_values("job", (), T0 - 10, T0 - 1) == []


def test_a_second_process_cannot_open_the_same_directory(open_db: Callable[..., TSDB]) -> None:
    import pytest

    from soulwatch.exceptions import StorageError

    open_db()
    with pytest.raises(StorageError, match="in use by another process"):
        open_db()


def test_any_label_text_survives_chunks_and_restart(open_db: Callable[..., TSDB]) -> None:
    odd = Labels.of(
        __name__="odd", path='/a "quoted"\\path\n', emoji="naïve ☃", sep="\x1e\x1f,=}", job="x"
    )
    db = open_db()
    app = db.appender(source="x/ü")
    app.append(odd, T0, 1.5)
    app.commit()
    db.maintain(force=True)  # the series goes to SQLite's catalogue, the sample to a chunk
    db.close()
    reopened = open_db()
    assert reopened.replay.series_loaded == 1
    (series,) = reopened.select([Matcher.equal("emoji", "naïve ☃")], T0, T0)
    assert series.labels == odd
    assert series.values == [1.5]


def test_head_runs_wider_than_32_bit_offsets_are_kept_exactly(
    open_db: Callable[..., TSDB],
) -> None:
    # Head times are 32-bit offsets (24.8 days); a longer run must widen, not fail.
    day = 86_400_000
    db = open_db(retention_time=100 * 86400, head_max_age=1000 * 86400)
    lbls = Labels.of(__name__="sparse")
    times = [T0 - 50 * day, T0 - 20 * day, T0, T0 + 1]
    for i, t in enumerate(times):
        app = db.appender()
        app.append(lbls, t, float(i))
        app.commit()
    everything = [Matcher.equal("__name__", "sparse")]
    (series,) = db.select(everything, T0 - 60 * day, T0 + day)
    assert series.timestamps == times
    (arrays,) = db.select_arrays(everything, T0 - 60 * day, T0 + day)
    assert arrays.timestamps.tolist() == times
    (middle,) = db.select(everything, T0 - 30 * day, T0)
    assert middle.timestamps == times[1:3]
    db.maintain(force=True)
    app = db.appender()
    app.append(lbls, T0 + 2, 4.0)
    app.commit()
    (series,) = db.select(everything, T0 - 60 * day, T0 + day)
    assert series.timestamps == [*times, T0 + 2]
    assert series.values == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_a_selective_matcher_beside_a_broad_one_finds_the_same_series_as_the_reference(
    open_db: Callable[..., TSDB],
) -> None:
    # 2,000 series of one name: route="/r7" (100 of them) leaves so few ids that
    # the broad matchers only filter them; both ways must agree with a scan.
    db = open_db()
    ref = MemoryStorage()
    app = db.appender()
    for i in range(2000):
        lbls = Labels.of(
            __name__="req", route=f"/r{i % 20}", code=("200", "500")[i % 3 == 0], pod=f"p{i}"
        )
        app.append(lbls, T0, float(i))
        ref.add(lbls, T0, float(i))
    app.append(Labels.of(__name__="other", route="/r7"), T0, 1.0)
    ref.add(Labels.of(__name__="other", route="/r7"), T0, 1.0)
    app.commit()
    for matchers in (
        [Matcher.equal("__name__", "req"), Matcher.equal("route", "/r7")],
        [Matcher.equal("route", "/r7"), Matcher(MatchType.REGEX, "__name__", "req|other")],
        [
            Matcher.equal("__name__", "req"),
            Matcher.equal("route", "/r7"),
            Matcher.equal("code", "500"),
            Matcher(MatchType.NOT_REGEX, "pod", "p1.*"),
        ],
        [Matcher.equal("pod", "p42"), Matcher(MatchType.REGEX, "route", "/r[0-9]+")],
        [Matcher.equal("__name__", "req"), Matcher.equal("route", "/nope")],
    ):
        got = _dump(list(db.select(matchers, T0, T0)))
        assert got == _dump(list(ref.select(matchers, T0, T0))), matchers
    assert (
        len(
            list(
                db.select([Matcher.equal("__name__", "req"), Matcher.equal("route", "/r7")], T0, T0)
            )
        )
        == 100
    )


def test_the_query_engine_over_the_tsdb_answers_as_over_the_reference(
    open_db: Callable[..., TSDB],
) -> None:
    # The engine reads the TSDB's arrays (head and chunks): same floats as from lists.
    db = open_db(chunk_samples=32)
    ref = MemoryStorage()
    samples = _workload(2)
    half = len(samples) // 2
    _load(db, samples[:half])
    _load(ref, samples[:half])
    db.maintain()
    _load(db, samples[half:])
    _load(ref, samples[half:])
    end = T0 + 300 * 15_000
    queries = [
        "rate(http_requests_total[5m])",
        "sum by (job) (avg_over_time(http_requests_total[10m]))",
        "deriv(up[3m])",
        "http_requests_total",
    ]
    for query in queries:
        got = Engine(db).range(query, T0 + 600_000, end, 60_000)
        want = Engine(ref).range(query, T0 + 600_000, end, 60_000)
        assert isinstance(got.value, list)
        assert got.value, query
        assert _dump(got.value) == _dump(want.value), query  # type: ignore[arg-type]
    # A range vector's samples come back as plain lists, as from any storage.
    (matrix,) = (
        Engine(db).instant('http_requests_total{job="api",instance="h0",code="200"}[5m]', end).value
    )  # type: ignore[misc]
    assert isinstance(matrix, Series)
    assert type(matrix.timestamps) is list
