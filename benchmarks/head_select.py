"""CPU time of selecting series held in the TSDB's head, for A/B runs of two trees.

Appends ``--series`` series (the ``tsdb_ingest`` workload: counters, gauges,
histogram buckets) every 15 s for ``--minutes`` with maintenance every
minute, as the service runs, so each series' head holds what it holds in
steady state (about half a chunk). Then times ``select_arrays`` of every
series over a rule's window (the last 5 minutes) and over the last hour (the
head and the newest chunks), and the same selections through the query
engine (``sum(rate(...[5m]))`` instant, and a 1 h range at a 60 s step).
Prints the median CPU time (``time.process_time``) of ``--reps`` runs.

Run against another tree with its ``src`` first on the path:
``PYTHONPATH=/path/to/tree/src .venv/bin/python benchmarks/head_select.py``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tsdb_ingest import Workload, scrape_times

from soulwatch.clock import SimulatedClock
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Matcher, MatchType


def _cpu_ms(fn: Callable[[], object], reps: int) -> float:
    spent = []
    for _ in range(reps):
        start = time.process_time()
        fn()
        spent.append(time.process_time() - start)
    return statistics.median(spent) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=90)
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    work = Workload(args.series)
    times = scrape_times(args.minutes * 4)
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-select-") as tmp:
        clock = SimulatedClock(start=times[0] / 1000)
        db = TSDB(StorageConfig(path=Path(tmp) / "tsdb"), clock=clock)
        try:
            refs = [0] * args.series
            for k, t in enumerate(times):
                clock.set_time(t / 1000)
                app = db.appender(source="api/bench")
                refs = app.append_batch(refs, work.labels, t, array("d", work.step()))
                app.commit()
                if k % 4 == 3:
                    db.maintain()
            now = times[-1]
            every = [Matcher(MatchType.REGEX, "__name__", ".+")]
            head = db.stats().head_samples / args.series
            rows = [
                ("select_arrays, every series, last 5 min", now - 300_000),
                ("select_arrays, every series, last 1 h", now - 3_600_000),
            ]
            for name, mint in rows:
                ms = _cpu_ms(lambda mint=mint: list(db.select_arrays(every, mint, now)), args.reps)
                print(f"{name}: {ms:.1f} ms CPU")
            engine = Engine(db, timeout_s=600)
            query = "sum by (job) (rate(http_requests_total[5m]))"
            ms = _cpu_ms(lambda: engine.instant(query, now), args.reps)
            print(f"instant {query}: {ms:.1f} ms CPU")
            ms = _cpu_ms(lambda: engine.range(query, now - 3_600_000, now, 60_000), args.reps)
            print(f"range 1 h / 60 s {query}: {ms:.1f} ms CPU")
            print(f"({args.series:,} series, {head:.1f} head samples per series)")
        finally:
            db.close()


if __name__ == "__main__":
    main()
