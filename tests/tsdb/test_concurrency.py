"""One writer, several readers and the maintenance thread at once: readers always see a
consistent prefix of what was committed, never a gap or a duplicate."""

from __future__ import annotations

import threading
from collections.abc import Callable

from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels, Matcher

T0 = 1_700_000_000_000
STEPS = 2000
SERIES = 8


def test_readers_writer_and_maintenance_in_parallel(open_db: Callable[..., TSDB]) -> None:
    db = open_db(chunk_samples=16, wal_segment_max_bytes=2048)
    labels = [Labels.of(__name__="c", i=str(i)) for i in range(SERIES)]
    done = threading.Event()
    errors: list[BaseException] = []
    committed = [0]  # steps committed so far
    reads = [0]  # selects that ran while the writer was still writing
    maintained = threading.Event()  # maintenance has written chunks

    def guarded(fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # reported to the test below
                errors.append(exc)
                done.set()

        return run

    def write() -> None:
        for step in range(STEPS):
            if step == STEPS // 2:
                # On a busy machine the writer could finish before the maintenance
                # thread is first scheduled; half-way, it waits (bounded) until
                # maintenance has written chunks, so the second half is written
                # while maintenance goes on.
                assert maintained.wait(timeout=60), "maintenance never wrote a chunk"
            app = db.appender()
            for lbls in labels:
                app.append(lbls, T0 + step * 1000, float(step))
            app.commit()
            committed[0] = step + 1
        done.set()

    def read() -> None:
        for _ in range(2000):  # bounded
            if done.is_set():
                return
            floor = committed[0]
            for series in db.select([Matcher.equal("__name__", "c")], T0, T0 + 10**9):
                steps = [(t - T0) // 1000 for t in series.timestamps]
                assert steps == list(range(len(steps))), "a gap or a duplicate"
                assert series.values == [float(s) for s in steps]
                assert len(steps) >= floor, "a committed sample is missing"
            reads[0] += not done.is_set()

    def maintain() -> None:
        for _ in range(2000):
            if done.is_set():
                return
            db.maintain()
            if db.stats().chunks_written:
                maintained.set()

    def watch() -> None:  # what a /metrics scrape reads, while segments come and go
        for _ in range(20_000):
            if done.is_set():
                return
            assert db.size_bytes() > 0
            assert db.stats().samples_appended >= 0

    threads = [threading.Thread(target=guarded(f)) for f in (write, read, read, maintain, watch)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)
    assert db.stats().chunks_written > 0  # maintenance really ran during the writes
    assert reads[0] >= 5
    final = list(db.select([Matcher.equal("__name__", "c")], T0, T0 + 10**9))
    assert [len(s) for s in final] == [STEPS] * SERIES
