"""Generic webhook: Alertmanager's webhook payload (version 4), optionally HMAC-signed.

The body is what Alertmanager's ``webhook_configs`` sends, so existing
receivers work unchanged. With a secret, ``X-Soulwatch-Signature:
sha256=<hex>`` is the HMAC-SHA256 of the exact body bytes. Every request
carries ``Idempotency-Key`` so a receiver can drop a redelivery after a crash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx

from soulwatch.alerting.message import Notification, iso
from soulwatch.alerting.notifiers._http import request
from soulwatch.clock import Clock

SIGNATURE_HEADER = "X-Soulwatch-Signature"


def webhook_payload(n: Notification, *, max_alerts: int = 0) -> dict[str, Any]:
    """Alertmanager's webhook JSON (version 4) for ``n``."""
    alerts = n.alerts[:max_alerts] if max_alerts else n.alerts
    return {
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": len(n.alerts) - len(alerts),
        "status": n.status.value,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": n.common_labels,
        "commonAnnotations": n.common_annotations,
        "externalURL": n.external_url,
        "alerts": [
            {
                "status": a.status.value,
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": iso(a.starts_at),
                "endsAt": iso(a.ends_at),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint,
            }
            for a in alerts
        ],
    }


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookNotifier:
    """POSTs the Alertmanager webhook payload to a URL."""

    def __init__(
        self,
        url: str,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        max_alerts: int = 0,
        hmac_secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._url = url
        self._client = client
        self._clock = clock
        self._max_alerts = max_alerts
        self._secret = hmac_secret
        self._headers = headers or {}

    async def notify(self, notification: Notification) -> None:
        """POST the payload."""
        body = json.dumps(webhook_payload(notification, max_alerts=self._max_alerts)).encode()
        headers = {
            **self._headers,
            "Content-Type": "application/json",
            "Idempotency-Key": notification.idempotency_key,
        }
        if self._secret:
            headers[SIGNATURE_HEADER] = sign(self._secret, body)
        await request(
            self._client,
            "POST",
            self._url,
            content=body,
            headers=headers,
            now=self._clock.time(),
            what="webhook",
        )
