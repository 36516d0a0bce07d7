"""Email over a real local SMTP server (aiosmtpd): plain + HTML, STARTTLS, AUTH."""

from __future__ import annotations

import email
import ssl
import subprocess
from email import policy
from pathlib import Path

import pytest

from soulwatch.alerting.message import Status
from soulwatch.alerting.notifiers.email import EmailNotifier
from soulwatch.exceptions import DeliveryError
from tests.alerting.test_notifiers import _notification
from tests.helpers import free_port

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def _cert(tmp_path: Path) -> tuple[Path, Path]:
    key, crt = tmp_path / "key.pem", tmp_path / "crt.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(crt),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return key, crt


async def test_plain_and_html_over_plain_smtp():
    inbox = _Inbox()
    port = free_port()
    ctl = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        n = EmailNotifier(
            smarthost=f"127.0.0.1:{port}",
            sender="soulwatch@example.com",
            to="oncall@example.com",
            require_tls=False,
        )
        await n.notify(_notification())
        await n.notify(_notification(Status.RESOLVED))
    finally:
        ctl.stop()
    firing, resolved = inbox.messages
    assert firing["Subject"] == "[FIRING:1 P1] BackendDown"
    assert resolved["Subject"] == "[RESOLVED] BackendDown"
    assert firing["To"] == "oncall@example.com"
    assert firing["Message-ID"].endswith("@soulwatch>")
    plain = firing.get_body(("plain",)).get_content()
    html = firing.get_body(("html",)).get_content()
    assert "Backend /health failing for 2m" in plain
    assert "runbook: https://runbooks.example/backend-down" in plain
    assert "<table>" in html
    assert "Backend /health failing for 2m" in html


async def test_starttls_and_auth(tmp_path):
    key, crt = _cert(tmp_path)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(crt), str(key))
    seen: list[tuple[str, str]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"hunter2")

    inbox = _Inbox()
    port = free_port()
    ctl = aiosmtpd_controller.Controller(
        inbox,
        hostname="127.0.0.1",
        port=port,
        tls_context=server_ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
    )
    ctl.start()
    client_ctx = ssl.create_default_context(cafile=str(crt))
    try:
        ok = EmailNotifier(
            smarthost=f"127.0.0.1:{port}",
            sender="a@example.com",
            to="b@example.com",
            username="soulwatch",
            password="hunter2",
            ssl_context=client_ctx,
        )
        await ok.notify(_notification())
    finally:
        ctl.stop()
    assert len(inbox.messages) == 1
    assert seen == [("soulwatch", "hunter2")]


async def test_require_tls_without_starttls_is_refused():
    inbox = _Inbox()
    port = free_port()
    ctl = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        n = EmailNotifier(smarthost=f"127.0.0.1:{port}", sender="a@x", to="b@x", require_tls=True)
        with pytest.raises(DeliveryError, match="STARTTLS"):
            await n.notify(_notification())
    finally:
        ctl.stop()
    assert inbox.messages == []
