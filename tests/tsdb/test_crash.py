"""Crash safety: a kill -9 mid-append loses nothing committed; a torn WAL tail is cut cleanly."""

from __future__ import annotations

import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB
from soulwatch.tsdb.model import Labels, Matcher
from tests.helpers import REPO, subprocess_env
from tests.tsdb.crash_child import SERIES

T0 = 1_700_000_000_000


def _read_lines(proc: subprocess.Popen[bytes], want: int, timeout: float) -> list[str]:
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    buf = b""
    deadline = time.monotonic() + timeout
    while buf.count(b"\n") < want:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            pytest.fail(f"child printed {len(buf.splitlines())} lines, exit {proc.poll()}")
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if ready:
            buf += os.read(fd, 65536)
    return buf.decode().splitlines()


@pytest.mark.slow
@pytest.mark.parametrize("commits_before_kill", [150, 700])
def test_kill_9_loses_no_committed_sample(tmp_path: Path, commits_before_kill: int) -> None:
    data = tmp_path / "tsdb"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.tsdb.crash_child", str(data)],
        cwd=REPO,
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        lines = _read_lines(proc, commits_before_kill, timeout=60)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert proc.stdout is not None
        lines += proc.stdout.read().decode().splitlines()  # printed before the kill landed
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    t0 = int(lines[0])
    last_step = int(lines[-1])
    assert last_step >= commits_before_kill - 2

    with TSDB(StorageConfig(path=data)) as db:
        found = list(db.select([Matcher.equal("__name__", "crash_test")], t0, t0 + 10**9))
        assert len(found) == SERIES
        for series in found:
            # Every printed (committed) step is there; at most the one in flight beyond it.
            steps = [t - t0 for t in series.timestamps]
            assert steps[: last_step + 1] == list(range(last_step + 1))
            assert len(steps) - (last_step + 1) in (0, 1)
            assert series.values == [float(s) for s in steps]
        # The store goes on working after recovery.
        app = db.appender()
        app.append(Labels.of(__name__="crash_test", i="0"), t0 + 10**8, 1.0)
        app.commit()
        db.maintain(force=True)


def _fill(db: TSDB, steps: int) -> None:
    for step in range(steps):
        app = db.appender()
        app.append(Labels.of(__name__="m", i="a"), T0 + step * 1000, float(step))
        app.commit()


def _record_starts(data: bytes) -> list[int]:
    """Offsets of the WAL records (header: type u8, length u32, crc u32)."""
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        (length,) = struct.unpack_from("<I", data, pos + 1)
        pos += 9 + length
    return starts


def _segments(path: Path) -> list[Path]:
    return sorted(p for p in (path / "wal").iterdir() if p.name.isdigit())


def test_a_torn_last_record_is_cut_off_and_reported(open_db: Callable[..., TSDB]) -> None:
    db = open_db()
    _fill(db, 10)
    path = db.config.path
    db.close()
    last = _segments(path)[-1]
    data = last.read_bytes()
    # The crash hit in the middle of writing an 11th record: half of one is on disk.
    last.write_bytes(data + data[-40:-15])

    reopened = open_db()
    assert reopened.replay.truncated_bytes == 25
    assert reopened.replay.truncated_segments == 1
    assert reopened.replay.samples_replayed == 10
    assert last.stat().st_size == len(data)  # cut back to the last whole record
    (series,) = reopened.select([Matcher.equal("__name__", "m")], 0, 2**62)
    assert series.values == [float(i) for i in range(10)]


def test_a_corrupt_record_ends_its_segment_and_keeps_what_came_before(
    open_db: Callable[..., TSDB],
) -> None:
    db = open_db()
    _fill(db, 10)
    path = db.config.path
    db.close()
    last = _segments(path)[-1]
    data = bytearray(last.read_bytes())
    starts = _record_starts(bytes(data))
    assert len(starts) == 11  # one series record, then ten sample records
    sixth_samples = starts[6]
    data[sixth_samples + 12] ^= 0xFF  # flip a byte inside its payload
    last.write_bytes(bytes(data))

    reopened = open_db()
    assert reopened.replay.truncated_bytes == len(data) - sixth_samples
    (series,) = reopened.select([Matcher.equal("__name__", "m")], 0, 2**62)
    assert series.values == [0.0, 1.0, 2.0, 3.0, 4.0]
