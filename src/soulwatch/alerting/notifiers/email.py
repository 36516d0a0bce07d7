"""Email over SMTP: plain text and HTML, STARTTLS or implicit TLS (port 465), optional auth.

``smtplib`` runs in a worker thread so the event loop never blocks on the
mail server. The ``Message-ID`` is derived from the notification's idempotency
key, so a redelivery after a crash is recognisably the same message.
"""

from __future__ import annotations

import asyncio
import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from soulwatch.alerting.message import Notification, Status
from soulwatch.exceptions import DeliveryError

_PERMANENT_SMTP = range(500, 600)


def _subject(n: Notification) -> str:
    name = n.common_labels.get("alertname", "alerts")
    if n.status is Status.RESOLVED:
        return f"[RESOLVED] {name}"
    priority = n.common_labels.get("priority")
    tag = f" {priority}" if priority else ""
    return f"[FIRING:{len(n.firing)}{tag}] {name}"


def render_email(
    n: Notification, *, sender: str, to: str, headers: dict[str, str] | None = None
) -> EmailMessage:
    """The multipart (plain + HTML) message for ``n``."""
    msg = EmailMessage()
    msg["Subject"] = _subject(n)
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(n.created_at or None, usegmt=True)
    msg["Message-ID"] = f"<{n.idempotency_key.replace(':', '.')}@soulwatch>"
    for name, value in (headers or {}).items():
        if name.lower() not in ("subject", "from", "to"):
            msg[name] = value
    lines = [_subject(n), ""]
    rows = []
    for a in n.alerts:
        summary = a.annotations.get("summary", a.labels.get("alertname", ""))
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()))
        lines += [f"- [{a.status.value}] {summary}", f"  labels: {labels}"]
        if a.annotations.get("runbook_url"):
            lines.append(f"  runbook: {a.annotations['runbook_url']}")
        rows.append(
            f"<tr><td>{html.escape(a.status.value)}</td><td>{html.escape(summary)}</td>"
            f"<td>{html.escape(labels)}</td></tr>"
        )
    lines += [f"note: {note}" for note in n.notes]
    if n.external_url:
        lines += ["", f"soulwatch: {n.external_url}"]
    msg.set_content("\n".join(lines) + "\n")
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in n.notes)
    msg.add_alternative(
        f"<html><body><h2>{html.escape(_subject(n))}</h2>"
        f"<table><tr><th>status</th><th>summary</th><th>labels</th></tr>{''.join(rows)}</table>"
        f"{notes}</body></html>",
        subtype="html",
    )
    return msg


class EmailNotifier:
    """Sends the message through an SMTP smarthost."""

    def __init__(
        self,
        *,
        smarthost: str,
        sender: str,
        to: str,
        hello: str | None = None,
        username: str | None = None,
        password: str | None = None,
        require_tls: bool = True,
        headers: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
    ) -> None:
        host, _, port = smarthost.rpartition(":")
        if not host or not port.isdigit():
            raise DeliveryError(
                f"email: smarthost must be host:port, got {smarthost!r}", permanent=True
            )
        self._host, self._port = host, int(port)
        self._sender, self._to = sender, to
        self._hello = hello
        self._username, self._password = username, password
        self._require_tls = require_tls
        self._headers = headers or {}
        self._ssl = ssl_context
        self._timeout = timeout

    async def notify(self, notification: Notification) -> None:
        """Send one email."""
        msg = render_email(notification, sender=self._sender, to=self._to, headers=self._headers)
        await asyncio.to_thread(self._send, msg)

    def _send(self, msg: EmailMessage) -> None:
        context = self._ssl or ssl.create_default_context()
        try:
            if self._port == 465:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self._host,
                    self._port,
                    local_hostname=self._hello,
                    timeout=self._timeout,
                    context=context,
                )
            else:
                smtp = smtplib.SMTP(
                    self._host, self._port, local_hostname=self._hello, timeout=self._timeout
                )
            with smtp:
                smtp.ehlo()
                if self._port != 465:
                    if smtp.has_extn("starttls"):
                        smtp.starttls(context=context)
                        smtp.ehlo()
                    elif self._require_tls:
                        raise DeliveryError(
                            "email: server does not offer STARTTLS and require_tls is set",
                            permanent=True,
                        )
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(msg)
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"email: SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                permanent=exc.smtp_code in _PERMANENT_SMTP,
                status=exc.smtp_code,
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"email: {type(exc).__name__}: {exc}", permanent=False) from exc
