"""A child process for the kill -9 test: appends forever, printing each committed step.

Run as ``python -m tests.tsdb.crash_child DATA_DIR``. The first line is the
base timestamp; each later line is a step number printed right after its
commit returned. Maintenance (chunks, WAL rotation and deletion) runs every
25 steps so the kill can land in any phase. Bounded to two minutes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels

SERIES = 20


def main(path: str) -> None:
    config = StorageConfig(
        path=Path(path), chunk_samples=16, wal_segment_max_bytes=4096, wal_segment_max_age=0.05
    )
    db = TSDB(config)
    labels = [Labels.of(__name__="crash_test", i=str(i)) for i in range(SERIES)]
    t0 = int(time.time() * 1000)
    print(t0, flush=True)
    deadline = time.monotonic() + 120
    for step in range(10_000_000):
        if time.monotonic() > deadline:
            break
        app = db.appender()
        for lbls in labels:
            app.append(lbls, t0 + step, float(step))
        app.commit()
        print(step, flush=True)
        if step % 25 == 24:
            db.maintain()
    db.close()


if __name__ == "__main__":
    main(sys.argv[1])
