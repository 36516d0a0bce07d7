"""Fixtures of the HA tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ha.pair_support import world  # noqa: F401 - the fixture, for every test here
from tests.helpers import headless_chromium


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    with headless_chromium() as chromium:
        yield chromium
