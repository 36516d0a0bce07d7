"""Fixtures of the HA tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ha.pair_support import world  # noqa: F401 - the fixture, for every test here
from tests.helpers import need_binary


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium, headless, driven by Playwright."""
    path = need_binary("chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()
