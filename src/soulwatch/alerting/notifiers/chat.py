"""Discord and Microsoft Teams incoming webhooks: a short text message each.

Both are cheap once the Slack message exists, so they are built in rather
than pulling in apprise for two services.
"""

from __future__ import annotations

from typing import Any

import httpx

from soulwatch.alerting.message import Notification, Status
from soulwatch.alerting.notifiers._http import request
from soulwatch.clock import Clock


def _text(n: Notification) -> tuple[str, str]:
    name = n.common_labels.get("alertname", "alerts")
    priority = n.common_labels.get("priority", "")
    title = (
        f"RESOLVED: {name}"
        if n.status is Status.RESOLVED
        else f"FIRING {priority}: {name}".replace("  ", " ")
    )
    lines = [
        f"{'✅' if a.status is Status.RESOLVED else '🔥'} "
        f"{a.annotations.get('summary', a.labels.get('alertname', ''))}"
        for a in n.alerts[:10]
    ]
    lines += n.notes
    return title, "\n".join(lines)


def discord_payload(n: Notification) -> dict[str, Any]:
    """A Discord webhook message."""
    title, text = _text(n)
    color = 0x2EB67D if n.status is Status.RESOLVED else 0xE01E5A
    return {"content": title, "embeds": [{"title": title, "description": text, "color": color}]}


def teams_payload(n: Notification) -> dict[str, Any]:
    """A Teams incoming-webhook MessageCard."""
    title, text = _text(n)
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "themeColor": "2EB67D" if n.status is Status.RESOLVED else "E01E5A",
        "summary": title,
        "title": title,
        "text": text.replace("\n", "<br>"),
    }


class ChatWebhookNotifier:
    """Posts a Discord or Teams message."""

    def __init__(self, url: str, *, kind: str, client: httpx.AsyncClient, clock: Clock) -> None:
        self._url = url
        self._kind = kind
        self._client = client
        self._clock = clock

    async def notify(self, notification: Notification) -> None:
        """POST the message."""
        body = (
            discord_payload(notification)
            if self._kind == "discord"
            else teams_payload(notification)
        )
        await request(
            self._client, "POST", self._url, json=body, now=self._clock.time(), what=self._kind
        )
