"""A full disk: soulwatch says so, keeps paging from memory, and catches up.

The data directory is a small tmpfs mounted by the test. Once a filler file
has taken every free byte, the TSDB's WAL, the alert state and the outbox
cannot be written. ``/health`` and ``/ready`` must say so (503, naming the
failing stores) and so must ``soulwatch_store_failing``; a fault that starts
meanwhile must still page, and the page must say the store is failing. Once
the filler is deleted, health returns and what memory held is written: a
restart neither pages the same episode again nor forgets to resolve it.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.alerting.run_support import (
    FaultTarget,
    MonitorProcess,
    Timing,
    pages,
    receiver,
    write_config,
)
from tests.helpers import in_ci, wait_until

pytestmark = pytest.mark.slow

SIZE = "24m"


@contextlib.contextmanager
def small_filesystem(path: Path) -> Iterator[Path]:
    """A tmpfs of :data:`SIZE` mounted at ``path`` (needs root; skips outside CI otherwise)."""
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        message = f"cannot mount a tmpfs for the full-disk test: {done.stderr.strip()}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem has no byte left."""
    chunk = b"\0" * 65536
    with path.open("wb") as f:
        for _ in range(100_000):  # far more than the filesystem holds
            try:
                f.write(chunk)
                f.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    with contextlib.suppress(OSError), path.open("ab") as f:
        for _ in range(65536):  # the last partial chunk, byte by byte
            f.write(b"\0")
            f.flush()


def _health(proc: MonitorProcess) -> tuple[int, dict]:
    response = proc.get("/health")
    return response.status_code, response.json()


def test_full_disk_health_fails_paging_goes_on_and_it_recovers(tmp_path):
    with (
        small_filesystem(tmp_path / "disk") as disk,
        FaultTarget() as target,
        receiver() as hook,
    ):
        # A resolve goes out at its group's next tick: keep that short.
        timing = Timing(group_interval="5s")
        config = write_config(
            tmp_path, target.address, hook.url, data_dir=disk / "data", timing=timing
        )
        proc = MonitorProcess(config)
        try:
            proc.start()
            assert _health(proc)[0] == 200

            fill(disk / "filler")
            _, body = wait_until(
                lambda: (h := _health(proc))[0] == 503 and "wal" in h[1]["failing_stores"] and h,
                timeout=30,
                what="/health reporting the WAL on the full disk",
            )
            assert body["status"] == "degraded"
            assert "wal" in body["failing_stores"], body
            assert proc.get("/-/ready").status_code == 503
            metrics = proc.get("/metrics").text
            assert 'soulwatch_store_failing{store="wal"} 1.0' in metrics

            # A fault starting now still pages, and the page says why it may be late to repeat.
            target.on = True
            wait_until(lambda: pages(hook), timeout=30, what="the page on a full disk")
            [(state, _, _, page)] = pages(hook)
            assert state == "firing"
            warning = page["alerts"][0]["annotations"]["soulwatch_store_failing"]
            assert "wal" in warning
            assert proc.get("/api/v1/alerts").json()["data"]["alerts"], "evaluated from memory"

            # Space is back: health returns, and what memory held is written.
            (disk / "filler").unlink()
            wait_until(lambda: _health(proc)[0] == 200, timeout=30, what="health back")
            assert proc.get("/-/ready").status_code == 200
            metrics = proc.get("/metrics").text
            assert 'soulwatch_store_failing{store="wal"} 0.0' in metrics
            assert 'soulwatch_store_failing{store="outbox"} 0.0' in metrics

            # A restart: the episode was recorded as paged (no second page) and
            # still resolves when the fault ends.
            proc.stop()
            proc.start()
            target.on = False
            wait_until(lambda: len(pages(hook)) >= 2, timeout=30, what="the resolve")
        finally:
            proc.stop()
    assert [p[0] for p in pages(hook)] == ["firing", "resolved"]
