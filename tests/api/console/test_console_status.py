"""The Status page on a full disk, in a real headless Chromium against a real ``soulwatch run``.

The data directory is a small tmpfs the test fills: the page must say which
store cannot be written, since when and why, and stop saying so once space
is back.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.api.console.conftest import PageErrors, screenshot
from tests.api.console.support import running_soulwatch
from tests.disk import fill, small_filesystem
from tests.helpers import wait_until

pytestmark = pytest.mark.slow


def _failing(api: Any) -> dict[str, str]:
    response = api.get("/health")
    return response.json()["failing_stores"] if response.status_code == 503 else {}


def test_status_page_shows_a_failing_store_then_its_recovery(browser: Any, tmp_path: Any) -> None:
    with small_filesystem(tmp_path / "data") as disk, running_soulwatch(tmp_path) as sw:
        pages = {
            w: browser.new_context(viewport={"width": w, "height": 900}).new_page()
            for w in (390, 1440)
        }
        errors = [PageErrors(page) for page in pages.values()]
        page = pages[1440]
        page.goto(sw.url + "/status")
        assert page.locator("#stores").get_attribute("data-failing") == "0"
        assert "Every store of the data directory accepts writes" in page.inner_text("#stores")

        fill(disk / "filler")
        wait_until(lambda: "wal" in _failing(sw.api), timeout=30, what="the WAL failing")
        for width, page in pages.items():
            page.goto(sw.url + "/status")
            row = page.locator('#stores tr[data-store="wal"]')
            cells = [c.inner_text() for c in row.locator("td").all()]
            assert cells[0].endswith("wal")
            since = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC \((just now|.* ago)\)"
            assert re.fullmatch(since, cells[1]), cells
            assert "No space left on device" in cells[2], cells
            assert page.locator("#stores h2").inner_text().endswith("cannot be written")
            # Red, as every failing thing in the console.
            colour = page.locator("#stores").evaluate("e => getComputedStyle(e).borderLeftColor")
            assert colour == "rgb(179, 38, 30)"
            overflow = page.evaluate("document.documentElement.scrollWidth")
            assert overflow <= width + 1, f"the page is wider than the screen ({overflow}px)"
            if width == 1440:  # docs/console.md shows the desktop one
                screenshot(page, "status-failing-store-1440")

        # Acting on a full disk: the silence form says why it cannot store the silence.
        form = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
        form.goto(sw.url + "/silences/new")
        form.fill('input[name="matchers"]', '{alertname="BackendDown"}')
        form.fill('input[name="duration"]', "1h")
        form.fill('input[name="created_by"]', "alice")
        with form.expect_navigation() as sent:
            form.get_by_role("button", name="Create silence").click()
        assert sent.value is not None
        assert sent.value.status == 503
        assert "no space left on device" in form.inner_text("#form-error")
        assert form.locator('input[name="matchers"]').input_value() == '{alertname="BackendDown"}'
        assert sw.api.get("/api/v2/silences").json() == []
        form.context.close()

        (disk / "filler").unlink()
        wait_until(lambda: not _failing(sw.api), timeout=30, what="every store writing again")
        page.goto(sw.url + "/status")
        assert page.locator("#stores").get_attribute("data-failing") == "0"
        assert [e.messages for e in errors] == [[], []]
        for page in pages.values():
            page.context.close()
