"""The console board's range queries through the engine over the real TSDB, CPU time.

``benchmarks/console.py`` times the board's 26 queries through the HTTP API
of ``soulwatch run`` beside Prometheus; this script isolates the part that
is soulwatch's own: the same data (``console._samples``) appended to an
embedded TSDB, then every board query evaluated by :class:`Engine` over it,
as ``/api/v1/query_range`` does (3 h, 60 points). It prints the process CPU
time of the first board (every persisted chunk decoded) and of one full
board per round after it, and the time spent selecting (the TSDB's
``select_arrays``), so two trees can be compared run after run.

``--persist`` first cuts the older samples into chunks (``maintain``), so
that the queries read persisted chunks as well as the head.

Run: ``.venv/bin/python benchmarks/board_tsdb.py [--series 10000] [--rounds 5] [--persist]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.console import HOURS, _samples

from soulwatch.api.console.boards import load_board, preset_board_path
from soulwatch.promql.engine import Engine
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--series", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--persist", action="store_true", help="cut older samples into chunks")
    args = parser.parse_args()
    board = load_board(preset_board_path())
    exprs = [p.expr for r in board.rows for p in r.panels]
    with tempfile.TemporaryDirectory(prefix="soulwatch-bench-board-") as tmp:
        end_s = int(time.time()) - 30
        config = StorageConfig(path=Path(tmp) / "tsdb")
        if args.persist:
            config = config.model_copy(update={"head_max_age": 3600.0})
        db = TSDB(config)
        try:
            app = db.appender()
            for labels, t, value in _samples(end_s, args.series):
                app.append(labels, t * 1000, value)
            app.commit()
            if args.persist:
                db.maintain(force=True)
            selecting = [0.0]
            select = db.select_arrays

            def timed(*a: object, **k: object) -> object:
                t0 = time.process_time()
                out = list(select(*a, **k))  # type: ignore[arg-type]
                selecting[0] += time.process_time() - t0
                return iter(out)

            db.select_arrays = timed  # type: ignore[method-assign]
            engine = Engine(db, timeout_s=600)
            start_ms = (end_s - HOURS * 3600) * 1000
            step_ms = HOURS * 3600 // 60 * 1000
            t0 = time.process_time()
            for expr in exprs:  # the first board: every chunk decoded
                engine.range(expr, start_ms, end_s * 1000, step_ms)
            cold = time.process_time() - t0
            cpu: list[float] = []
            sel: list[float] = []
            for _ in range(args.rounds):
                selecting[0] = 0.0
                t0 = time.process_time()
                for expr in exprs:
                    engine.range(expr, start_ms, end_s * 1000, step_ms)
                cpu.append(time.process_time() - t0)
                sel.append(selecting[0])
        finally:
            db.close()
    print(
        f"board over the TSDB ({args.series:,} series, {len(exprs)} queries,"
        f" persist={args.persist}): first board {cold * 1000:,.0f} ms CPU;"
        f" then p50 {statistics.median(cpu) * 1000:,.0f} ms"
        f" (min {min(cpu) * 1000:,.0f}), of which select_arrays"
        f" p50 {statistics.median(sel) * 1000:,.0f} ms"
    )


if __name__ == "__main__":
    main()
