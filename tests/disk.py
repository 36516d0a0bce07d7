"""A small filesystem a test can fill: the real full disk of soulwatch's data directory.

Mounting a tmpfs needs root; outside CI a test that cannot mount one skips,
in CI it fails.
"""

from __future__ import annotations

import contextlib
import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import in_ci

#: Room for soulwatch's stores, small enough to fill in a blink.
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
    """Write ``path`` until the filesystem has no byte left.

    Unbuffered: a buffered file that failed to flush would try again, and
    raise, when it is closed.
    """
    chunk = b"\0" * 65536
    with path.open("wb", buffering=0) as f:
        for _ in range(100_000):  # far more than the filesystem holds
            try:
                if f.write(chunk) == 0:
                    break
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
        for _ in range(65536):  # the last partial chunk, byte by byte
            try:
                f.write(b"\0")
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
