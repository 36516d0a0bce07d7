"""The data directory's permissions: only soulwatch's own user may read it.

The data directory holds notification payloads (the outbox), silences,
heartbeat pings and alert history; none of it is for other local users.
:func:`secure_data_dir` creates it ``0700`` and tightens what an older
version left readable: directories to ``0700``, files to ``0600``.
``soulwatch run`` also sets the process umask to ``077``, so files created
later (SQLite databases, their WAL and journal files, TSDB segments) are
``0600`` from the start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
#: How many entries are tightened at most (the data directory holds a few dozen).
_MAX_ENTRIES = 100_000


def secure_data_dir(path: Path) -> None:
    """Create ``path`` (``0700``) if needed and make it and its contents private.

    Symbolic links are left alone (their targets are not soulwatch's to change).
    Raises ``OSError`` when the directory cannot be created.
    """
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, DIR_MODE)
    seen = 0
    for root, dirs, files in os.walk(path):
        for name in dirs:
            _tighten(Path(root) / name, DIR_MODE)
        for name in files:
            _tighten(Path(root) / name, FILE_MODE)
        seen += len(dirs) + len(files)
        if seen > _MAX_ENTRIES:
            break


def _tighten(path: Path, mode: int) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:  # removed meanwhile (a SQLite journal)
        return
    if stat.S_ISLNK(info.st_mode) or stat.S_IMODE(info.st_mode) & ~mode == 0:
        return
    path.chmod(stat.S_IMODE(info.st_mode) & mode)
