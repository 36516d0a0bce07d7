"""`soulwatch demo` prints its console's address, and a fault shows there live."""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time
from typing import Any

import pytest

from tests.api.console.conftest import PageErrors, screenshot
from tests.helpers import need_binary, soulwatch_command, subprocess_env

pytestmark = pytest.mark.slow


def _lines(proc: subprocess.Popen[str]) -> tuple[queue.Queue[str], threading.Thread]:
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return lines, thread


@pytest.mark.timeout(300)
def test_the_demo_console_shows_backend_down_live(browser: Any) -> None:
    need_binary("redis-server")
    proc = subprocess.Popen(
        # A quarter of the default speed: the page stays firing for seconds, not one refresh.
        soulwatch_command("demo", "--check", "--scenario", "backend-down", "--speed", "15"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=subprocess_env(),
    )  # fmt: skip
    lines, pump = _lines(proc)
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            found = re.search(r"the console is at (http://127\.0\.0\.1:\d+)/", line)
            url = found.group(1) if found else None
        assert url, "the demo did not print its console's address"

        page = browser.new_page(viewport={"width": 1440, "height": 900})
        errors = PageErrors(page)
        page.goto(url + "/")
        assert page.locator("h2", has_text="Soulcaster").count() == 1
        tile = '[data-panel="Backend / /health probe"]'
        # The scenario stops the backend; BackendDown fires after 2 min of demo time.
        page.wait_for_selector(f'{tile}[data-state="firing"]', timeout=120_000)
        assert "BackendDown" in page.locator(tile).inner_text()
        screenshot(page, "overview-soulcaster")
        page.set_viewport_size({"width": 390, "height": 900})
        page.wait_for_timeout(300)
        screenshot(page, "overview-soulcaster-390")
        assert errors.messages == []
        page.close()
    finally:
        # SIGTERM: the demo stops its platform, then exits; its output is read
        # to the end (the pump thread ends at EOF) before the pipe is closed.
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        pump.join(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()
