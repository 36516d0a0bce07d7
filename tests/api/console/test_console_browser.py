"""The console in a real headless Chromium against a real ``soulwatch run``.

What a person on call would notice: a tile turning red when its alert fires,
a silence made in the console stopping the pages, an acknowledgement
stopping the repeats (but not the "resolved"), the page a Slack button opens,
Explore drawing a query or pointing at the error, and every page working
without JavaScript errors on a phone and a desktop.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.api.console.conftest import PageErrors, screenshot
from tests.api.console.support import BACKUP_CHECK, SIGNALS, Soulwatch
from tests.helpers import wait_until

pytestmark = pytest.mark.slow

#: The board's refresh (board.yml: 1s) and what a request may take on a busy machine.
REFRESH_MS = 1000
SLACK_MS = 1500
#: Longer than two repeat intervals (2 s each).
QUIET_S = 5.0


def _page(browser: Any, width: int = 1440, scheme: str = "light") -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    return context.new_page()


def test_overview_tile_turns_red_within_one_refresh(browser: Any, soulwatch: Soulwatch) -> None:
    page = _page(browser)
    errors = PageErrors(page)
    page.goto(soulwatch.url + "/")
    tile = page.locator('[data-panel="tile / level"]')
    assert tile.get_attribute("data-state") in ("ok", "nodata")

    soulwatch.app.set("tile", 0)
    wait_until(lambda: soulwatch.firing("tile"), timeout=20, what="SignalLow{name=tile} firing")
    # No reload: the page's own refresh must bring the red tile.
    page.wait_for_selector(
        '[data-panel="tile / level"][data-state="firing"]', timeout=REFRESH_MS + SLACK_MS
    )
    colour = tile.evaluate("e => getComputedStyle(e).borderLeftColor")
    assert colour == "rgb(179, 38, 30)"  # --bad in the light scheme
    assert "SignalLow firing" in tile.inner_text()
    assert page.locator(".summary h1").inner_text().endswith("firing")
    # The other tiles stay as they were.
    assert page.locator('[data-panel="steady / level"]').get_attribute("data-state") == "ok"
    assert errors.messages == []
    page.context.close()


def test_a_silence_created_in_the_console_mutes_the_alert(
    browser: Any, soulwatch: Soulwatch
) -> None:
    soulwatch.app.set("silence", 0)
    # Paged, and paged again after repeat_interval: the alert is not muted yet.
    wait_until(lambda: len(soulwatch.slack_messages("silence")) >= 2, timeout=30, what="repeats")
    page = _page(browser)
    errors = PageErrors(page)
    page.goto(soulwatch.url + "/alerts")
    row = page.locator("li", has_text='name="silence"').first
    assert "value 0" in row.inner_text()  # the rule's current value
    row.get_by_role("link", name="Silence").click()
    page.wait_for_url(re.compile(r"/silences/new\?"))
    matchers = page.locator('input[name="matchers"]')
    assert 'name="silence"' in matchers.input_value()
    assert 'alertname="SignalLow"' in matchers.input_value()
    assert page.locator('#preview [data-matches="1"]').count() == 1
    # The preview follows what is typed.
    matchers.fill('{name="no-such-signal"}')
    page.wait_for_selector('#preview [data-matches="0"]', timeout=3000)
    matchers.fill('{alertname="SignalLow", name="silence"}')
    page.wait_for_selector('#preview [data-matches="1"]', timeout=3000)
    page.fill('input[name="duration"]', "1h")
    page.fill('input[name="created_by"]', "alice")
    page.fill('input[name="comment"]', "deploying a fix")
    screenshot(page, "silence-new")
    page.get_by_role("button", name="Create silence").click()
    page.wait_for_url(re.compile(r"/silences\?created="))
    assert "deploying a fix" in page.locator("#silences").inner_text()

    silences = soulwatch.api.get("/api/v2/silences").json()
    ours = [s for s in silences if s["createdBy"] == "alice"]
    assert len(ours) == 1
    assert ours[0]["status"]["state"] == "active"
    assert {"name": "name", "value": "silence", "isRegex": False, "isEqual": True} in [
        {k: m[k] for k in ("name", "value", "isRegex", "isEqual")} for m in ours[0]["matchers"]
    ]
    sent = len(soulwatch.slack_messages("silence"))
    time.sleep(QUIET_S)
    assert soulwatch.firing("silence"), "the alert still fires; it is only muted"
    assert len(soulwatch.slack_messages("silence")) == sent, "a silenced alert was paged"
    page.goto(soulwatch.url + "/alerts")
    assert "silenced" in page.locator("li", has_text='name="silence"').first.inner_text()
    assert errors.messages == []
    page.context.close()


def _console_link(message: dict[str, Any]) -> str:
    actions = next(b for b in message["blocks"] if b["type"] == "actions")
    return next(e["url"] for e in actions["elements"] if e["action_id"] == "ui")


def test_the_notification_link_opens_the_alert_page_and_acknowledge_stops_repeats(
    browser: Any, soulwatch: Soulwatch
) -> None:
    soulwatch.app.set("ack", 0)
    wait_until(lambda: len(soulwatch.slack_messages("ack")) >= 2, timeout=30, what="repeats")
    link = _console_link(soulwatch.slack_messages("ack")[-1])
    assert link.startswith(soulwatch.url + "/alerts/group/")

    page = _page(browser)
    errors = PageErrors(page)
    page.goto(link)
    assert page.locator("h1").inner_text() == "SignalLow"
    timeline = page.locator("#timeline").inner_text()
    assert "inactive → pending" in timeline
    assert "pending → firing" in timeline
    rows = page.locator("#notifications tbody tr")
    assert rows.count() >= 2
    assert "slack" in rows.first.inner_text()
    assert "delivered" in rows.first.inner_text()
    # The chart of the rule's expression, with its threshold.
    page.wait_for_selector("figure.chart canvas", timeout=5000)
    screenshot(page, "alert")

    page.fill('#ack-form input[name="by"]', "bob")
    page.fill('#ack-form input[name="comment"]', "on it")
    page.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector("#ack", timeout=5000)
    assert "Acknowledged by bob" in page.locator("#ack").inner_text()

    sent = len(soulwatch.slack_messages("ack"))
    time.sleep(QUIET_S)
    assert soulwatch.firing("ack")
    assert len(soulwatch.slack_messages("ack")) == sent, "an acknowledged group was repeated"
    # The acknowledgement holds repeats only: the recovery is still announced.
    soulwatch.app.set("ack", 1)
    wait_until(
        lambda: any(
            str(m["text"]).startswith("✅ RESOLVED") for m in soulwatch.slack_messages("ack")[sent:]
        ),
        timeout=20,
        what="the resolved notification",
    )
    # History: the episode, how long until someone acknowledged it, and who.
    page.goto(soulwatch.url + "/history?alertname=SignalLow")
    row = page.locator("tr", has_text='name="ack"').first
    assert "by bob" in row.locator(".ack-time").inner_text()
    assert "ongoing" not in row.inner_text()
    assert errors.messages == []
    page.context.close()


def test_explore_draws_a_query_and_points_at_a_parse_error(
    browser: Any, soulwatch: Soulwatch
) -> None:
    # A few scrapes' worth of data first, so that the chart has lines to draw.
    wait_until(
        lambda: len(
            soulwatch.api.get(
                "/api/v1/query_range",
                params={"query": 'signal{name="steady"}', "start": time.time() - 60,
                        "end": time.time(), "step": 1},
            ).json()["data"]["result"][0]["values"]
        )
        >= 3,
        timeout=20,
        what="three scrapes",
    )  # fmt: skip
    page = _page(browser)
    errors = PageErrors(page)
    page.goto(soulwatch.url + "/explore?expr=signal&range=5m")
    page.wait_for_selector("figure.chart canvas", timeout=5000)
    legend = page.locator("figure.chart .u-legend").inner_text()
    assert 'name="steady"' in legend
    assert page.locator("#result-table tbody tr").count() == len(SIGNALS)
    screenshot(page, "explore")

    # Completion of metric names while typing.
    area = page.locator("#expr")
    area.fill("")
    area.type("sig")
    page.wait_for_selector(".suggestions li", timeout=3000)
    assert "signal" in page.locator(".suggestions").inner_text()
    # ...and of label names inside the braces.
    area.press("Escape")
    area.fill("")
    area.type("signal{na")
    page.locator(".suggestions li", has_text="name").wait_for(timeout=3000)
    area.press("Tab")
    assert area.input_value() == "signal{name"

    page.goto(soulwatch.url + "/explore?expr=" + "sum(rate(signal[5m])")
    error = page.locator("#query-error")
    text = error.inner_text()
    match = re.search(r"(\d+):(\d+): parse error", text)
    assert match, text
    caret_line = next(line for line in text.splitlines() if line.strip() == "^")
    assert len(caret_line) == int(match.group(2))  # the caret sits under the column named
    assert page.locator("figure.chart").count() == 0
    bad_end = soulwatch.api.get("/explore", params={"expr": "signal", "end": "yesterday"})
    assert bad_end.status_code == 200
    assert "&#39;yesterday&#39; is not an RFC 3339 time" in bad_end.text
    assert errors.messages == []
    page.context.close()


PAGES = [
    ("/", "overview"),
    ("/alerts", "alerts"),
    ("/history", "history"),
    ("/silences", "silences"),
    ("/heartbeats", "heartbeats"),
    ("/targets", "targets"),
    ("/rules", "rules"),
    ("/deliveries", "deliveries"),
    ("/status", "status"),
    ("/explore?expr=sum+by+%28name%29+%28signal%29&range=15m", "explore-sum"),
]


@pytest.mark.parametrize("width", [390, 1440])
def test_every_page_at_phone_and_desktop_width_without_errors(
    browser: Any, soulwatch: Soulwatch, width: int
) -> None:
    # A failed run then a good one, so the heartbeat page has pings to show.
    soulwatch.api.post(f"/ping/{BACKUP_CHECK}/3", content=b"pg_dump: connection refused")
    soulwatch.api.post(f"/ping/{BACKUP_CHECK}/0", content=b"backup done: 1.2 GB")
    page = _page(browser, width)
    errors = PageErrors(page)
    for path, name in PAGES:
        response = page.goto(soulwatch.url + path)
        assert response is not None
        assert response.status == 200, path
        page.wait_for_load_state("load")
        assert page.locator("main h1").count() >= 1, path
        overflow = page.evaluate("document.documentElement.scrollWidth")
        assert overflow <= width + 1, f"{path} is wider than the screen ({overflow}px)"
        screenshot(page, f"{name}-{width}")
        # What the live refresh fetches: the same page's <main>, alone.
        fragment = soulwatch.api.get(path, headers={"X-Console-Fragment": "main"})
        assert fragment.status_code == 200, path
        assert "<html" not in fragment.text
        assert "<h1>" in fragment.text
    assert errors.messages == [], errors.messages
    page.context.close()


def test_dark_scheme_and_pages_read_without_javascript(browser: Any, soulwatch: Soulwatch) -> None:
    dark = _page(browser, 1440, "dark")
    dark.goto(soulwatch.url + "/")
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 20, 23)"
    screenshot(dark, "overview-dark")
    dark.context.close()

    context = browser.new_context(java_script_enabled=False, viewport={"width": 390, "height": 800})
    page = context.new_page()
    page.goto(soulwatch.url + "/")
    assert page.locator('[data-panel="tile / level"] .value').inner_text() != ""
    assert page.locator('[data-panel="tile / level"] svg.spark').count() == 1
    page.goto(soulwatch.url + "/alerts")
    assert "SignalLow" in page.locator("main").inner_text()
    context.close()


def test_heartbeat_checks_are_created_pinged_and_deleted_from_the_console(
    browser: Any, soulwatch: Soulwatch
) -> None:
    page = _page(browser)
    errors = PageErrors(page)
    page.goto(soulwatch.url + "/heartbeats")
    page.locator("summary", has_text="New check").click()
    page.fill('#check-form input[name="name"]', "cleanup-job")
    page.fill('#check-form input[name="period"]', "soon")
    page.get_by_role("button", name="Create").click()
    assert "period" in page.locator("#check-error").inner_text()
    errors.messages.clear()  # the browser logs the 400 of the refused form

    page.fill('#check-form input[name="period"]', "1h")
    page.get_by_role("button", name="Create").click()
    card = page.locator('[data-check="cleanup-job"]')
    url = card.locator("code.copy").inner_text()
    assert url.startswith(soulwatch.url + "/ping/")
    assert "new" in card.inner_text()
    ping = soulwatch.api.post(url.removeprefix(soulwatch.url), content=b"swept 12 files")
    assert ping.text == "OK"
    # The page's own refresh shows the ping.
    page.locator('[data-check="cleanup-job"]', has_text="swept 12").wait_for(timeout=15_000)
    card.get_by_role("button", name="Delete").click()
    page.wait_for_url(soulwatch.url + "/heartbeats")
    names = [c["name"] for c in soulwatch.api.get("/api/v1/heartbeats").json()["checks"]]
    assert "cleanup-job" not in names
    # A check from the config file cannot be deleted here.
    assert page.locator('[data-check="nightly-backup"] button', has_text="Delete").count() == 0
    assert errors.messages == []
    page.context.close()


def test_a_heartbeat_paused_from_the_console_stops_alerting_until_its_next_ping(
    browser: Any, soulwatch: Soulwatch
) -> None:
    ping = f"/ping/{BACKUP_CHECK}"
    soulwatch.api.post(ping + "/fail", content=b"disk full")
    wait_until(lambda: soulwatch.alert_state("HeartbeatDown") == "firing", timeout=20,
               what="HeartbeatDown firing")  # fmt: skip
    page = _page(browser)
    errors = PageErrors(page)
    page.goto(soulwatch.url + "/heartbeats")
    card = page.locator('[data-check="nightly-backup"]')
    assert card.locator(".state").inner_text() == "down"
    # Without the form's CSRF token, nothing changes.
    assert soulwatch.api.post("/heartbeats/nightly-backup/pause").status_code == 403
    card.get_by_role("button", name="Pause").click()
    page.wait_for_url(re.compile(r"/heartbeats"))
    assert card.locator(".state").inner_text() == "paused"
    assert "not alerting until its next ping" in card.inner_text()
    screenshot(page, "heartbeats-paused")
    check = soulwatch.api.get("/api/v1/heartbeats/nightly-backup").json()
    assert check["status"] == "paused"
    wait_until(lambda: soulwatch.alert_state("HeartbeatDown") == "inactive", timeout=20,
               what="HeartbeatDown resolved by the pause")  # fmt: skip

    # The next ping ends the pause; the page's live refresh shows it without a reload.
    assert soulwatch.api.get(ping).text == "OK"
    card.locator(".state", has_text="up").wait_for(timeout=15_000)
    card.get_by_role("button", name="Pause").click()
    card.locator(".state", has_text="paused").wait_for(timeout=5_000)
    card.get_by_role("button", name="Resume").click()
    card.locator(".state", has_text="new").wait_for(timeout=5_000)
    flips = soulwatch.api.get("/api/v1/heartbeats/nightly-backup").json()["flips"]
    assert [(f["from"], f["to"]) for f in flips][:4] == [
        ("paused", "new"),
        ("up", "paused"),
        ("paused", "up"),
        ("down", "paused"),
    ]
    assert soulwatch.alert_state("HeartbeatDown") == "inactive"
    assert errors.messages == []
    page.context.close()


def test_a_pushed_event_turns_the_tile_red_without_polling(
    browser: Any, soulwatch: Soulwatch
) -> None:
    # The "slow" board refreshes hourly: within seconds only the event stream can update it.
    page = _page(browser)
    errors = PageErrors(page)
    fragments: list[str] = []
    page.on(
        "request",
        lambda r: fragments.append(r.url) if r.headers.get("x-console-fragment") else None,
    )
    page.goto(soulwatch.url + "/boards/slow")
    assert page.evaluate("document.body.dataset.refresh") == "3600.0"
    page.wait_for_selector('body[data-live="open"]', state="attached", timeout=5_000)
    tile = page.locator('[data-panel="live / level"]')
    assert tile.get_attribute("data-state") in ("ok", "nodata")

    soulwatch.app.set("live", 0)
    wait_until(lambda: soulwatch.firing("live"), timeout=20, what="SignalLow{name=live} firing")
    page.wait_for_selector('[data-panel="live / level"][data-state="firing"]', timeout=5_000)
    assert "SignalLow firing" in tile.inner_text()
    # The page refreshed because events asked (its timer would wait an hour).
    assert fragments, "the tile changed without a refresh?"
    assert errors.messages == []
    page.context.close()
