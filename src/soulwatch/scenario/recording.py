"""Capturing what goes out during a scenario, at the notifier boundary.

:class:`RecordingNotifier` wraps each real notifier: the real one builds and
sends its request, and once the integration accepted the notification it is
recorded as a :class:`SentNotification` with the simulated time. The HTTP
requests go to :class:`RecordingTransport`, which answers every request
in-process with a success (GitHub-shaped, so the issue flow works), so the
receivers' URLs in the configuration are never contacted. Email is sent over
SMTP, not HTTP: its notifier is recorded without being called.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from soulwatch.alerting.message import AlertInfo, Notification, Status
from soulwatch.alerting.notifiers import Notifier
from soulwatch.alerting.notifiers.email import EmailNotifier
from soulwatch.clock import Clock
from soulwatch.duration import format_duration


@dataclass(frozen=True)
class SentNotification:
    """A notification an integration accepted, at ``offset`` seconds after the start."""

    offset: float
    receiver: str
    integration: str
    status: Status
    alerts: tuple[AlertInfo, ...]

    @property
    def common_labels(self) -> dict[str, str]:
        """Labels every alert of the notification has, with the same value."""
        if not self.alerts:
            return {}
        first = self.alerts[0].labels
        return {k: v for k, v in first.items() if all(a.labels.get(k) == v for a in self.alerts)}

    @property
    def alertname(self) -> str:
        """The alert name (names joined by ``,`` when a group mixes several)."""
        return ",".join(sorted({a.labels.get("alertname", "") for a in self.alerts}))

    def describe(self) -> str:
        """One line: time, receiver, status, alert name, labels, number of alerts."""
        labels = {k: v for k, v in self.common_labels.items() if k != "alertname"}
        text = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        count = len(self.alerts)
        return (
            f"{format_duration(self.offset)} {self.receiver} {self.status.value}"
            f" {self.alertname} {{{text}}} ({count} alert{'s' if count != 1 else ''})"
        )


class RecordingNotifier:
    """A :class:`~soulwatch.alerting.notifiers.Notifier` that records what its inner one sent."""

    def __init__(
        self, inner: Notifier, log: list[SentNotification], *, clock: Clock, start: float
    ) -> None:
        self.inner = inner
        self._log = log
        self._clock = clock
        self._start = start

    async def notify(self, notification: Notification) -> None:
        """Send through the inner notifier (not for SMTP), then record."""
        if not isinstance(self.inner, EmailNotifier):
            await self.inner.notify(notification)
        self._log.append(
            SentNotification(
                offset=self._clock.time() - self._start,
                receiver=notification.receiver,
                integration=notification.integration,
                status=notification.status,
                alerts=tuple(notification.alerts),
            )
        )


def recording(
    notifiers: Mapping[str, Notifier], log: list[SentNotification], *, clock: Clock, start: float
) -> dict[str, Notifier]:
    """Every notifier of ``notifiers`` wrapped in a :class:`RecordingNotifier`."""
    return {
        key: RecordingNotifier(inner, log, clock=clock, start=start)
        for key, inner in notifiers.items()
    }


class RecordingTransport(httpx.AsyncBaseTransport):
    """Answers every request in-process with a 2xx and keeps it; nothing leaves the process."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self._numbers = itertools.count(1)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Record ``request``; reply as the services do to an accepted message."""
        await request.aread()
        self.requests.append(request)
        # Enough for every notifier: GitHub reads "number" and "items", others only the status.
        body = {"ok": True, "status": "success", "number": next(self._numbers), "items": []}
        return httpx.Response(202 if "pagerduty" in request.url.host else 200, json=body)
