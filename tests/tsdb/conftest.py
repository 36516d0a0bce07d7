"""Fixtures for the TSDB tests: a store on real SQLite in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from soulwatch.clock import SimulatedClock
from soulwatch.tsdb.config import StorageConfig
from soulwatch.tsdb.db import TSDB


@pytest.fixture
def open_db(tmp_path: Path, clock: SimulatedClock) -> Iterator[Callable[..., TSDB]]:
    """Open a TSDB in ``tmp_path/tsdb`` (settings as keyword arguments); closed at the end."""
    opened: list[TSDB] = []

    def _open(**settings: Any) -> TSDB:
        settings.setdefault("path", tmp_path / "tsdb")
        db = TSDB(StorageConfig(**settings), clock=clock)
        opened.append(db)
        return db

    yield _open
    for db in opened:
        db.close()
