"""Forward alerts to an Alertmanager's ``/api/v2/alerts`` (the path to an HA cluster).

Each alert is posted as Alertmanager's ``postableAlert``; firing alerts carry
no ``endsAt`` so Alertmanager keeps them until its ``resolve_timeout`` unless
they are sent again, which soulwatch does on every evaluation.
"""

from __future__ import annotations

from typing import Any

import httpx

from soulwatch.alerting.message import Notification, Status, iso
from soulwatch.alerting.notifiers._http import request
from soulwatch.clock import Clock


def postable_alerts(n: Notification) -> list[dict[str, Any]]:
    """The ``/api/v2/alerts`` body for ``n``."""
    out = []
    for a in n.alerts:
        item: dict[str, Any] = {
            "labels": a.labels,
            "annotations": a.annotations,
            "startsAt": iso(a.starts_at),
            "generatorURL": a.generator_url or n.external_url,
        }
        if a.status is Status.RESOLVED:
            item["endsAt"] = iso(a.ends_at)
        out.append(item)
    return out


class AlertmanagerNotifier:
    """POSTs alerts to ``<url>/api/v2/alerts``."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._url = url.rstrip("/") + "/api/v2/alerts"
        self._client = client
        self._clock = clock
        self._headers = headers or {}

    async def notify(self, notification: Notification) -> None:
        """POST the alerts."""
        await request(
            self._client,
            "POST",
            self._url,
            json=postable_alerts(notification),
            headers=self._headers,
            now=self._clock.time(),
            what="alertmanager",
        )
