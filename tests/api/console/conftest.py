"""Fixtures of the console's tests: a real soulwatch and a real headless Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.console.support import Soulwatch, running_soulwatch
from tests.helpers import REPO, headless_chromium

SCREENSHOTS = REPO / "docs" / "img" / "console"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (it cannot download its own browsers here)."""
    with headless_chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def soulwatch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soulwatch]:
    """One open (no auth) soulwatch for the module's tests."""
    with running_soulwatch(tmp_path_factory.mktemp("console")) as sw:
        yield sw


class PageErrors:
    """JavaScript errors and failed loads a page reported."""

    def __init__(self, page: Any) -> None:
        self.messages: list[str] = []
        page.on("console", lambda m: self.messages.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.messages.append(f"uncaught: {e}"))


def screenshot(page: Any, name: str) -> None:
    """Save a full-page screenshot for docs/console.md when SOULWATCH_SCREENSHOTS is set."""
    if os.environ.get("SOULWATCH_SCREENSHOTS"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS / f"{name}.png")), full_page=True)
