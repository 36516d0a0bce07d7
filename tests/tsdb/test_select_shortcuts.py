"""Selection shortcuts give the plain answers: random series, windows and id sets.

The TSDB skips a search when a window covers a series' first or last head
sample, and looks few candidate ids up in large postings in one numpy pass;
both are checked against the in-memory reference store and a brute-force scan.
"""

from __future__ import annotations

import math
import struct
import tempfile
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from soulwatch.clock import SimulatedClock
from soulwatch.promql import columnar
from soulwatch.tsdb import head
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.memory import MemoryStorage
from soulwatch.tsdb.model import STALE_NAN, Labels, Matcher, MatchType

T0 = 1_700_000_000_000

_gaps = st.lists(st.integers(min_value=1, max_value=40_000), min_size=0, max_size=30)
_value = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just(STALE_NAN), st.just(0.0))


def _bits(values: object) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]  # type: ignore[attr-defined]


@settings(max_examples=60, deadline=None)
@given(
    series_gaps=st.lists(_gaps, min_size=1, max_size=6),
    values=st.lists(_value, min_size=200, max_size=200),
    window=st.tuples(st.integers(-50_000, 1_300_000), st.integers(0, 1_300_000)),
    edge=st.sampled_from(["free", "first", "last", "both"]),
    nudge=st.tuples(st.integers(-1, 1), st.integers(-1, 1), st.integers(0, 10**6)),
)
def test_select_returns_exactly_the_samples_in_the_window(
    series_gaps: list[list[int]],
    values: list[float],
    window: tuple[int, int],
    edge: str,
    nudge: tuple[int, int, int],
) -> None:
    ref = MemoryStorage()
    with tempfile.TemporaryDirectory() as tmp:
        db = TSDB(StorageConfig(path=Path(tmp) / "tsdb"), clock=SimulatedClock(start=T0 / 1000))
        try:
            app = db.appender()
            times_of: list[list[int]] = []
            k = 0
            for i, gaps in enumerate(series_gaps):
                lbls = Labels.of(__name__="m", s=str(i), odd=str(i % 2))
                t = T0
                times = []
                for gap in gaps:
                    t += gap
                    times.append(t)
                    v = values[k % len(values)]
                    k += 1
                    app.append(lbls, t, v)
                    ref.add(lbls, t, v)
                times_of.append(times)
            app.commit()
            mint, maxt = T0 + window[0], T0 + window[0] + window[1]
            # Windows that start or end on, just before or just after a sample.
            some = sorted(t for times in times_of for t in times)
            if some and edge in ("first", "both"):
                mint, maxt = some[nudge[2] % len(some)] + nudge[0], T0 + 2_000_000
            if some and edge in ("last", "both"):
                maxt = some[-1 - nudge[2] % len(some)] + nudge[1]
                if edge == "last":
                    mint = T0
            for matchers in (
                [Matcher.equal("__name__", "m")],
                [Matcher.equal("odd", "1"), Matcher(MatchType.REGEX, "__name__", "m|x")],
            ):
                got = list(db.select_arrays(matchers, mint, maxt))
                want = list(ref.select(matchers, mint, maxt))
                assert [s.labels for s in got] == [s.labels for s in want]
                for g, w in zip(got, want, strict=True):
                    assert g.timestamps.tolist() == w.timestamps
                    assert _bits(g.values) == _bits(w.values)
        finally:
            db.close()


@settings(max_examples=200, deadline=None)
@given(
    postings=st.lists(
        st.lists(st.integers(0, 300), unique=True, max_size=80).map(sorted), max_size=4
    ),
    ids=st.sets(st.integers(0, 300), max_size=40),
)
def test_candidate_ids_are_found_in_postings_as_by_bisection(
    postings: list[list[int]], ids: set[int]
) -> None:
    arrays = [array("q", p) for p in postings]
    want = {i for i in ids if any(head._has(found, i) for found in arrays)}
    assert head._present(set(ids), arrays) == want
    # The postings stay growable: no buffer of theirs is left exported.
    for found in arrays:
        found.append(10**6)


@pytest.mark.skipif(not columnar.available(), reason="numpy is not installed")
@settings(max_examples=200, deadline=None)
@given(
    columns=st.lists(st.lists(_value, max_size=8), max_size=6),
    as_arrays=st.booleans(),
)
def test_any_nan_sees_every_nan_and_staleness_marker(
    columns: list[list[float]], as_arrays: bool
) -> None:
    given_columns = [array("d", c) for c in columns] if as_arrays else columns
    want = any(math.isnan(v) for c in columns for v in c)
    assert columnar.any_nan(given_columns) is want
