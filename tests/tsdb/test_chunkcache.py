"""Decoded chunks kept between reads: same answers, each chunk decoded once, bounded memory."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import Labels, Matcher
from tests.tsdb.test_db import MATCHER_SETS, T0, _dump, _load, _workload

END = T0 + 300 * 15_000


def _arrays(
    db: TSDB, matchers: list[Matcher], mint: int, maxt: int
) -> list[tuple[Labels, list[int], list[bytes]]]:
    return [
        (s.labels, s.timestamps.tolist(), [struct.pack("<d", v) for v in s.values])
        for s in db.select_arrays(matchers, mint, maxt)
    ]


def _persisted(open_db: Callable[..., TSDB], **settings: object) -> tuple[TSDB, MemoryStorage]:
    db = open_db(chunk_samples=32, **settings)
    ref = MemoryStorage()
    samples = _workload(3)
    _load(db, samples)
    _load(ref, samples)
    db.maintain(force=True)  # every sample in a chunk
    return db, ref


def test_reads_from_the_cache_answer_as_fresh_decodes(open_db: Callable[..., TSDB]) -> None:
    db, ref = _persisted(open_db)
    windows = [(T0, END), (T0 + 1_000_000, T0 + 2_000_000), (T0 + 777, T0 + 778)]
    for _ in range(2):  # cold, then every chunk from the cache
        for mint, maxt in windows:
            for matchers in MATCHER_SETS:
                want = _dump(list(ref.select(matchers, mint, maxt)))
                assert _arrays(db, matchers, mint, maxt) == want, matchers
                assert db.series(matchers, mint, maxt) == ref.series(matchers, mint, maxt)
    stats = db.stats()
    assert stats.chunk_cache_misses > 0
    assert stats.chunk_cache_hits > stats.chunk_cache_misses


def test_a_reader_changing_its_arrays_does_not_change_the_next_read(
    open_db: Callable[..., TSDB],
) -> None:
    db, ref = _persisted(open_db)
    matchers = MATCHER_SETS[0]
    for s in db.select_arrays(matchers, T0, END):
        with pytest.raises(TypeError):  # values are read-only views
            s.values[0] = -1.0
        for i in range(len(s.timestamps)):
            s.timestamps[i] = 0
    assert _arrays(db, matchers, T0, END) == _dump(list(ref.select(matchers, T0, END)))


def test_a_query_selecting_a_series_many_times_decodes_its_chunks_once(
    open_db: Callable[..., TSDB], tmp_path: Path
) -> None:
    db, ref = _persisted(open_db)
    widest = 'max_over_time(http_requests_total{job="api"}[1h])'
    query = (
        'rate(http_requests_total{job="api"}[5m]) + rate(http_requests_total{job="api"}[10m])'
        f" + {widest}"
    )
    start = T0 + 3_600_000
    got = Engine(db).range(query, start, END, 60_000).value
    assert got == Engine(ref).range(query, start, END, 60_000).value
    misses = db.stats().chunk_cache_misses
    assert db.stats().chunk_cache_hits > 0
    # The widest selector alone, on a store of its own, decodes as many chunks:
    # the two narrower selectors found every chunk they read decoded already.
    alone, _ = _persisted(open_db, path=tmp_path / "alone")
    Engine(alone).range(widest, start, END, 60_000)
    assert misses == alone.stats().chunk_cache_misses > 0
    # The next query (a board's refresh) decodes nothing.
    Engine(db).range(query, start, END, 60_000)
    assert db.stats().chunk_cache_misses == misses


def test_the_cache_stays_within_its_bound(open_db: Callable[..., TSDB]) -> None:
    db, ref = _persisted(open_db, chunk_cache_bytes=8 * 1024)
    for matchers in MATCHER_SETS:
        assert _arrays(db, matchers, T0, END) == _dump(list(ref.select(matchers, T0, END)))
        assert 0 < db.stats().chunk_cache_bytes <= 8 * 1024


def test_the_cache_can_be_turned_off(open_db: Callable[..., TSDB]) -> None:
    db, ref = _persisted(open_db, chunk_cache_bytes=0)
    for _ in range(2):
        assert _arrays(db, [], T0, END) == _dump(list(ref.select([], T0, END)))
    stats = db.stats()
    assert (stats.chunk_cache_hits, stats.chunk_cache_bytes) == (0, 0)


def test_the_cache_is_exported_as_metrics(tmp_path: Path, clock: SimulatedClock) -> None:
    registry = CollectorRegistry()
    with TSDB(
        StorageConfig(path=f"{tmp_path}/tsdb", chunk_samples=32), clock=clock, registry=registry
    ) as db:
        _load(db, _workload(4))
        db.maintain(force=True)
        list(db.select_arrays([], T0, END))
        list(db.select_arrays([], T0, END))
        misses = registry.get_sample_value("soulwatch_tsdb_chunk_cache_misses_total")
        hits = registry.get_sample_value("soulwatch_tsdb_chunk_cache_hits_total")
        held = registry.get_sample_value("soulwatch_tsdb_chunk_cache_bytes")
        assert misses
        assert hits == misses
        assert held
