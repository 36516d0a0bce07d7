"""Fixtures shared by the whole suite; the machinery lives in tests/helpers.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from soulwatch.clock import SimulatedClock
from tests.helpers import Recorder, RedisServer


@pytest.fixture
def clock() -> SimulatedClock:
    """A simulated clock at a fixed start time."""
    return SimulatedClock(start=1_700_000_000.0)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """A local HTTP server recording every request."""
    with Recorder() as rec:
        yield rec


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free port (skips outside CI when not installed)."""
    with RedisServer() as server:
        yield server
