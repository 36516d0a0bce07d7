"""A/B of the scrape path: CPU per sample of two or more source trees, alternating.

Each tree's own ``benchmarks/scrape_ingest.py`` (its target body and its
``scrape_rate`` loop) scrapes into a fresh embedded TSDB, in a process of its
own, ``--repeats`` times; the trees take turns for ``--rounds`` rounds, so a
neighbour's load on a shared machine falls on all of them alike. CPU time,
not wall time, is what compares.

Run: ``.venv/bin/python benchmarks/scrape_ab.py /path/to/main-tree . [--rounds 3]``
(a tree is a checkout or ``git archive`` export with ``src/`` and ``benchmarks/``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

# Runs inside each tree: its scrape_ingest module puts its own src/ first on sys.path.
_ONE_TREE = textwrap.dedent(
    """
    import asyncio, subprocess, sys, tempfile
    from pathlib import Path
    sys.path.insert(0, "benchmarks")
    import scrape_ingest as si
    from soulwatch.tsdb.config import StorageConfig
    from soulwatch.tsdb.db import TSDB
    repeats, scrapes = int(sys.argv[1]), int(sys.argv[2])
    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body.txt"
        body.write_text(si.exposition())
        server = subprocess.Popen(
            [sys.executable, "-c", si.SERVER, str(body)], stdout=subprocess.PIPE, text=True
        )
        try:
            port = int(server.stdout.readline())
            for rep in range(repeats):
                db = TSDB(StorageConfig(path=Path(tmp) / f"tsdb{rep}"))
                try:
                    print(asyncio.run(si.scrape_rate(port, db, scrapes))[1], flush=True)
                finally:
                    db.close()
        finally:
            server.terminate()
            server.wait(timeout=10)
    """
)


def run_tree(tree: Path, repeats: int, scrapes: int) -> list[float]:
    """CPU µs per sample of ``repeats`` runs of ``tree``'s scrape loop into its TSDB."""
    done = subprocess.run(
        [sys.executable, "-c", _ONE_TREE, str(repeats), str(scrapes)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return [float(line) for line in done.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scrapes", type=int, default=10)
    args = parser.parse_args()
    results: dict[Path, list[float]] = {tree: [] for tree in args.trees}
    for rnd in range(args.rounds):
        for tree in args.trees:
            cpu = run_tree(tree, args.repeats, args.scrapes)
            results[tree].extend(cpu)
            print(f"round {rnd + 1} {tree}: {statistics.median(cpu):.2f} CPU µs/sample")
    print("\n| tree | CPU µs per sample: median (min–max) |\n|---|---:|")
    for tree, cpu in results.items():
        print(f"| {tree} | {statistics.median(cpu):.2f} ({min(cpu):.2f}–{max(cpu):.2f}) |")


if __name__ == "__main__":
    main()
