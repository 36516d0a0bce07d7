"""The console with ``auth`` configured: logins, scopes, CSRF, and no secret on screen."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.console.conftest import screenshot
from tests.api.console.support import READ_TOKEN, WRITE_TOKEN, Soulwatch, running_soulwatch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Soulwatch]:
    """A soulwatch whose reads need a token, with a read-only and a silencing token."""
    with running_soulwatch(tmp_path_factory.mktemp("secured"), auth=True) as sw:
        yield sw


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the form has no CSRF token"
    return found.group(1)


@contextlib.contextmanager
def _logged_in(sw: Soulwatch, token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sw.url, timeout=5) as client:
        page = client.get("/login")
        reply = client.post("/login", data={"csrf": _csrf(page.text), "token": token})
        assert reply.status_code == 303
        yield client


def test_reading_needs_a_login_or_a_token(secured: Soulwatch) -> None:
    with httpx.Client(base_url=secured.url, timeout=5) as anonymous:
        reply = anonymous.get("/alerts?x=1")
        assert reply.status_code == 303
        assert reply.headers["location"] == "/login?next=%2Falerts%3Fx%3D1"
        assert anonymous.get("/", headers={"X-Console-Fragment": "main"}).status_code == 401
        assert "SignalLow" not in anonymous.get("/rules").text
    bearer = {"Authorization": f"Bearer {READ_TOKEN}"}
    reply = httpx.get(secured.url + "/rules", headers=bearer)
    assert reply.status_code == 200
    assert "SignalLow" in reply.text
    assert "open console" not in reply.text


def test_login_cookie_is_httponly_and_strict(browser: Any, secured: Soulwatch) -> None:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    page.goto(secured.url + "/rules")
    assert page.url.startswith(secured.url + "/login")
    page.fill('input[name="token"]', "not-a-token-at-all-0000")
    page.get_by_role("button", name="Log in").click()
    assert "that token is not valid" in page.locator("main").inner_text()
    page.fill('input[name="token"]', READ_TOKEN)
    screenshot(page, "login")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(secured.url + "/rules")
    assert "reader" in page.locator("header .who").inner_text()
    session = next(c for c in context.cookies() if c["name"] == "soulwatch_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert READ_TOKEN not in session["value"]
    context.close()


def test_a_read_only_login_cannot_silence_a_write_login_can(
    browser: Any, secured: Soulwatch
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(secured.url + "/login?next=/silences/new")
    page.fill('input[name="token"]', READ_TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/silences/new$"))
    page.fill('input[name="matchers"]', '{name="steady"}')
    page.get_by_role("button", name="Create silence").click()
    assert "'silences' or 'admin' scope" in page.locator("main").inner_text()
    assert secured.api.get("/api/v2/silences").json() == []

    page.get_by_role("button", name="log out").click()
    page.wait_for_url(re.compile(r"/login$"))
    page.goto(secured.url + "/login?next=/silences/new")
    page.fill('input[name="token"]', WRITE_TOKEN)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/silences/new$"))
    # The author is the token's name: no "created by" to fill in.
    assert page.locator('input[name="created_by"]').count() == 0
    page.fill('input[name="matchers"]', '{name="steady"}')
    page.get_by_role("button", name="Create silence").click()
    page.wait_for_url(re.compile(r"/silences\?created="))
    silences = secured.api.get("/api/v2/silences").json()
    assert [s["createdBy"] for s in silences] == ["oncall"]
    context.close()


def test_login_only_returns_to_this_site(secured: Soulwatch) -> None:
    for target in ("//evil.example/x", "/\\evil.example/x", "https://evil.example/"):
        with httpx.Client(base_url=secured.url, timeout=5) as client:
            csrf = _csrf(client.get("/login").text)
            reply = client.post(
                "/login", params={"next": target}, data={"csrf": csrf, "token": READ_TOKEN}
            )
            assert reply.status_code == 303
            assert reply.headers["location"] == "/", target


def test_forged_or_missing_csrf_tokens_are_refused(secured: Soulwatch) -> None:
    with _logged_in(secured, WRITE_TOKEN) as client:
        form = {"matchers": '{name="tile"}', "duration": "1h", "comment": "csrf"}
        missing = client.post("/silences", data=form)
        assert missing.status_code == 403
        assert "CSRF" in missing.text
        forged = client.post("/silences", data={**form, "csrf": "A" * 43})
        assert forged.status_code == 403
        # Another session's token is no better.
        with _logged_in(secured, WRITE_TOKEN) as other:
            theirs = _csrf(other.get("/silences/new").text)
        assert client.post("/silences", data={**form, "csrf": theirs}).status_code == 403
        assert not [s for s in secured.api.get("/api/v2/silences").json() if s["comment"] == "csrf"]
        ours = _csrf(client.get("/silences/new").text)
        assert client.post("/silences", data={**form, "csrf": ours}).status_code == 303
        assert [s for s in secured.api.get("/api/v2/silences").json() if s["comment"] == "csrf"]


def test_a_read_token_cannot_acknowledge_and_secrets_stay_hidden(secured: Soulwatch) -> None:
    with _logged_in(secured, READ_TOKEN) as client:
        status = client.get("/status").text
        csrf = _csrf(client.get("/silences/new").text)
        reply = client.post("/alerts/group/" + "0" * 64 + "/ack", data={"csrf": csrf})
        assert reply.status_code == 403
    assert READ_TOKEN not in status
    assert WRITE_TOKEN not in status
    assert "/slack" not in status  # a webhook's path is its secret
    assert "&lt;secret&gt;" in status


def test_pausing_a_heartbeat_needs_the_admin_scope_and_a_csrf_token(secured: Soulwatch) -> None:
    for token in (READ_TOKEN, WRITE_TOKEN):  # read, and silences only
        with _logged_in(secured, token) as client:
            csrf = _csrf(client.get("/heartbeats").text)
            assert client.post("/heartbeats/nightly-backup/pause", data={}).status_code == 403
            reply = client.post("/heartbeats/nightly-backup/pause", data={"csrf": csrf})
            assert reply.status_code == 403
            assert "with the &#39;admin&#39; scope to do this" in reply.text
    status = secured.api.get("/api/v1/heartbeats/nightly-backup").json()["status"]
    assert status != "paused"
