"""Slack incoming webhook with a Block Kit message.

The message leads with the state and priority (``🔥 FIRING · P1`` or
``✅ RESOLVED``), then each alert's summary and value, and buttons to the
runbook (the ``runbook_url`` annotation) and to the alert in soulwatch's UI.
Slack's rate limit (HTTP 429 with ``Retry-After``) is retried, not dropped.
"""

from __future__ import annotations

from typing import Any

import httpx

from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.alerting.notifiers._http import describe, raise_for_response, request
from soulwatch.clock import Clock
from soulwatch.exceptions import DeliveryError

_MAX_ALERTS = 10  # Slack allows 50 blocks; keep the message readable.


def _title(n: Notification) -> str:
    name = n.common_labels.get("alertname") or n.group_labels.get("alertname") or "alerts"
    priority = n.common_labels.get("priority") or n.common_labels.get("severity")
    if n.status is Status.RESOLVED:
        return f"✅ RESOLVED: {name}"
    count = len(n.firing)
    tag = f" · {priority}" if priority else ""
    return f"🔥 FIRING{tag}: {name}" + (f" ({count} alerts)" if count > 1 else "")


def _alert_line(a: AlertInfo) -> str:
    summary = (
        a.annotations.get("summary")
        or a.annotations.get("description")
        or a.labels.get("alertname", "")
    )
    mark = "✅" if a.status is Status.RESOLVED else "🔥"
    value = f" — value `{a.value:g}`" if a.value is not None else ""
    return f"{mark} *{summary}*{value}"


def slack_payload(
    n: Notification, *, channel: str | None = None, username: str | None = None
) -> dict[str, Any]:
    """The Block Kit message for ``n``."""
    title = _title(n)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}}
    ]
    for a in n.alerts[:_MAX_ALERTS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _alert_line(a)}})
        labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items()) if k != "alertname")
        if labels:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": labels}]})
    if len(n.alerts) > _MAX_ALERTS:
        more = len(n.alerts) - _MAX_ALERTS
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"…and {more} more"}]}
        )
    for note in n.notes:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f":wrench: {note}"}})
    buttons = []
    runbook = n.common_annotations.get("runbook_url") or next(
        (a.annotations["runbook_url"] for a in n.alerts if "runbook_url" in a.annotations), None
    )
    if runbook:
        buttons.append(_button("Runbook", runbook, "runbook"))
    if n.external_url:
        buttons.append(_button("Open in soulwatch", _console_link(n), "ui"))
    if buttons:
        blocks.append({"type": "actions", "elements": buttons})
    payload: dict[str, Any] = {"text": title, "blocks": blocks}
    if channel:
        payload["channel"] = channel
    if username:
        payload["username"] = username
    return payload


def slack_raise_for_response(response: httpx.Response, now: float, what: str) -> None:
    """Slack's reading of an incoming-webhook response.

    Slack answers a bad webhook with a 4xx and an error code in the body:
    ``invalid_token`` (403), ``no_service`` (404), ``channel_is_archived``
    (410), ``invalid_payload`` (400). None of them goes away by retrying, so
    each is permanent and named in the error the UI shows; 429 and 5xx are
    retried (the shared reading).
    """
    status = response.status_code
    if 400 <= status < 500 and status not in {408, 429}:
        code = response.text[:100].strip() or "no error code"
        raise DeliveryError(
            f"{describe(response, what)} (Slack refused the webhook: {code})",
            permanent=True,
            status=status,
        )
    raise_for_response(response, now, what)


def _button(text: str, url: str, action_id: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "url": url,
        "action_id": action_id,
    }


class SlackNotifier:
    """Posts to a Slack incoming webhook URL."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        channel: str | None = None,
        username: str | None = None,
    ) -> None:
        self._url = url
        self._client = client
        self._clock = clock
        self._channel = channel
        self._username = username

    async def notify(self, notification: Notification) -> None:
        """POST the Block Kit message."""
        await request(
            self._client,
            "POST",
            self._url,
            json=slack_payload(notification, channel=self._channel, username=self._username),
            now=self._clock.time(),
            what="slack",
            check=slack_raise_for_response,
        )


def _console_link(n: Notification) -> str:
    """The console's page about this notification's alert group."""
    return f"{n.external_url.rstrip('/')}/alerts/group/{n.group_id}"
