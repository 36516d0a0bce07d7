"""PagerDuty Events API v2: ``trigger`` and ``resolve`` with a stable ``dedup_key``.

The dedup key is the sha256 of the alert group's key, so repeats and
redeliveries after a restart update the same PagerDuty incident, and the
``resolve`` closes it. Severity comes from the ``priority`` label (P1 →
critical, P2 → warning, P3 → info) or a PagerDuty-valid ``severity`` label.
"""

from __future__ import annotations

from typing import Any

import httpx

from soulwatch.alerting.message import Notification, Status, iso
from soulwatch.alerting.notifiers._http import request
from soulwatch.clock import Clock

DEFAULT_URL = "https://events.pagerduty.com/v2/enqueue"
_PRIORITY_SEVERITY = {"P1": "critical", "P2": "warning", "P3": "info", "P4": "info"}
_VALID = ("critical", "error", "warning", "info")


def severity(labels: dict[str, str], override: str | None = None) -> str:
    """The PagerDuty severity of an alert group."""
    if override in _VALID:
        return str(override)
    priority = labels.get("priority", "").upper()
    if priority in _PRIORITY_SEVERITY:
        return _PRIORITY_SEVERITY[priority]
    sev = labels.get("severity", "").lower()
    return sev if sev in _VALID else "error"


def pagerduty_event(
    n: Notification,
    *,
    routing_key: str,
    client: str = "soulwatch",
    client_url: str | None = None,
    severity_override: str | None = None,
    details: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The Events API v2 body for ``n``."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": n.group_id,
        "event_action": "resolve" if n.status is Status.RESOLVED else "trigger",
    }
    if n.status is Status.RESOLVED:
        return event
    common = n.common_labels
    first = n.firing[0] if n.firing else n.alerts[0]
    summary = first.annotations.get("summary") or common.get("alertname", "alert")
    if len(n.firing) > 1:
        summary = f"[{len(n.firing)}] {summary}"
    notes = {"auto_recovery": "; ".join(n.notes)} if n.notes else {}
    event["payload"] = {
        "summary": summary[:1024],
        "source": common.get("instance") or common.get("job") or "soulwatch",
        "severity": severity(common, severity_override),
        "timestamp": iso(first.starts_at),
        "component": common.get("job"),
        "group": common.get("service") or common.get("alertname"),
        "class": common.get("alertname"),
        "custom_details": {
            "firing": [
                {"labels": a.labels, "annotations": a.annotations, "value": a.value}
                for a in n.firing
            ],
            "num_firing": len(n.firing),
            "num_resolved": len(n.resolved),
            **(details or {}),
            **notes,
        },
    }
    event["client"] = client
    if client_url or n.external_url:
        event["client_url"] = client_url or n.external_url
    links = []
    runbook = first.annotations.get("runbook_url")
    if runbook:
        links.append({"href": runbook, "text": "Runbook"})
    if first.generator_url:
        links.append({"href": first.generator_url, "text": "Source"})
    if links:
        event["links"] = links
    return event


class PagerDutyNotifier:
    """Sends events to the PagerDuty Events API v2 (or a stand-in at ``url``)."""

    def __init__(
        self,
        routing_key: str,
        *,
        client: httpx.AsyncClient,
        clock: Clock,
        url: str = DEFAULT_URL,
        client_name: str = "soulwatch",
        client_url: str | None = None,
        severity: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        self._key = routing_key
        self._client = client
        self._clock = clock
        self._url = url
        self._client_name = client_name
        self._client_url = client_url
        self._severity = severity
        self._details = details or {}

    async def notify(self, notification: Notification) -> None:
        """POST one event."""
        event = pagerduty_event(
            notification,
            routing_key=self._key,
            client=self._client_name,
            client_url=self._client_url,
            severity_override=self._severity,
            details=self._details,
        )
        await request(
            self._client, "POST", self._url, json=event, now=self._clock.time(), what="pagerduty"
        )
