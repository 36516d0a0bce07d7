"""CPU time of soulwatch's engine alone on ``promql_eval.py``'s data: for A/B runs.

Two trees of soulwatch are compared by running this script once with each
on ``PYTHONPATH`` (alternating, on the same machine): it builds the same
seeded dataset as ``promql_eval.py``, then times each range query in
process with ``time.process_time`` (CPU time, which other processes on a
shared machine disturb less than wall time), and prints the second best of
``--reps`` runs after a warm-up. No Prometheus here: ``promql_eval.py``
gives the side-by-side ratios.

Usage: ``PYTHONPATH=<tree>/src python benchmarks/promql_ab.py [--series 10000]
[--hours 1.5] [--reps 5] [--only avg topk ...]``
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import promql_eval
import soulwatch
from soulwatch.promql.engine import Engine


def _cpu(fn: object, reps: int) -> float:
    """Second-best CPU seconds of ``reps`` calls after one warm-up."""
    assert callable(fn)
    fn()
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    times.sort()
    return times[min(1, len(times) - 1)]


def main() -> int:
    """Build the data, time each selected range query, print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--series", type=int, default=10000)
    parser.add_argument("--hours", type=float, default=1.5)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--only", nargs="*", default=[], help="substrings of query names")
    args = parser.parse_args()
    end_s = (int(time.time()) // 3600 - 1) * 3600
    storage = promql_eval.build_dataset(args.series, args.hours, end_s)
    gc.collect()
    gc.freeze()
    engine = Engine(storage)  # type: ignore[arg-type]
    end_ms = (end_s - 7) * 1000
    print(f"# soulwatch from {Path(soulwatch.__file__).parent}", file=sys.stderr)
    for name, expr in promql_eval.RANGE_QUERIES.items():
        if args.only and not any(part in name for part in args.only):
            continue
        seconds = _cpu(
            lambda e=expr: engine.range(e, end_ms - 3_600_000, end_ms, promql_eval.STEP_S * 1000),
            args.reps,
        )
        print(f"{name}\t{seconds * 1000:.0f} ms", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
