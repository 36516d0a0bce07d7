"""What a notifier receives: one notification about one alert group, for one integration.

A :class:`Notification` is plain data so that the outbox can store it as JSON
before sending and send exactly the same bytes again after a crash.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from urllib.parse import urljoin, urlsplit

from soulwatch.alerts import Alert


class Status(Enum):
    """A notification's or an alert's status, as in Alertmanager's payloads."""

    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class AlertInfo:
    """One alert inside a notification."""

    status: Status
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: float
    ends_at: float | None
    fingerprint: str
    generator_url: str = ""
    value: float | None = None

    @classmethod
    def of(cls, alert: Alert, now: float, extra: Mapping[str, str] | None = None) -> AlertInfo:
        """The notification view of ``alert`` at ``now``, with extra annotations."""
        annotations = dict(alert.annotations)
        annotations.update(extra or {})
        resolved = alert.is_resolved(now)
        return cls(
            status=Status.RESOLVED if resolved else Status.FIRING,
            labels=alert.labels.to_dict(),
            annotations=annotations,
            starts_at=alert.starts_at,
            ends_at=alert.ends_at if resolved else None,
            fingerprint=alert.fingerprint,
            generator_url=alert.generator_url,
            value=None if math.isnan(alert.value) else alert.value,
        )


@dataclass(frozen=True)
class Notification:
    """One message to one integration of a receiver about one alert group."""

    receiver: str
    integration: str
    group_key: str
    group_labels: dict[str, str]
    status: Status
    alerts: list[AlertInfo]
    external_url: str = ""
    created_at: float = 0.0
    idempotency_key: str = ""
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Links in annotations (``runbook_url: docs/runbooks.md#x``) are made
        # absolute against the external URL: a chat or pager opens them as is.
        if self.external_url:
            linked = [absolute_links(a, self.external_url) for a in self.alerts]
            object.__setattr__(self, "alerts", linked)

    @property
    def group_id(self) -> str:
        """A stable short id of the alert group: the dedup key receivers see (PagerDuty, GitHub)."""
        return group_id(self.group_key)

    @property
    def firing(self) -> list[AlertInfo]:
        """The firing alerts."""
        return [a for a in self.alerts if a.status is Status.FIRING]

    @property
    def resolved(self) -> list[AlertInfo]:
        """The resolved alerts."""
        return [a for a in self.alerts if a.status is Status.RESOLVED]

    @property
    def common_labels(self) -> dict[str, str]:
        """Labels every alert shares with the same value."""
        return _common([a.labels for a in self.alerts])

    @property
    def common_annotations(self) -> dict[str, str]:
        """Annotations every alert shares with the same value."""
        return _common([a.annotations for a in self.alerts])

    @property
    def event_time(self) -> float:
        """When the change this notification reports happened (for latency)."""
        if self.status is Status.FIRING:
            return max((a.starts_at for a in self.firing), default=self.created_at)
        return max((a.ends_at or 0.0 for a in self.resolved), default=self.created_at)

    def to_json(self) -> str:
        """Serialise for the outbox."""
        data = asdict(self)
        data["status"] = self.status.value
        for a in data["alerts"]:
            a["status"] = a["status"].value
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Notification:
        """Read back what :meth:`to_json` wrote."""
        data: dict[str, Any] = json.loads(text)
        data["status"] = Status(data["status"])
        data["alerts"] = [AlertInfo(**{**a, "status": Status(a["status"])}) for a in data["alerts"]]
        return cls(**data)


def group_id(group_key: str) -> str:
    """sha256 of a group key, hex (Alertmanager's ``hashKey`` of the group key)."""
    return hashlib.sha256(group_key.encode()).hexdigest()


def episode(fingerprint: str, starts_at: float) -> str:
    """The identity of one episode of an alert: its fingerprint and when it started.

    The same alert firing again later (a new ``startsAt``) is a new episode,
    so the notification log treats it as news and pages again.
    """
    return f"{fingerprint}@{starts_at:.3f}"


def idempotency_key(
    group_key: str,
    integration: str,
    status: Status,
    reported: Sequence[str],
    decided_at: float,
) -> str:
    """The key of one notification to one integration.

    ``reported`` names the alert episodes it reports with their status
    (``fingerprint@startsAt:status``) and ``decided_at`` is when the
    dispatcher decided to send it. The key is stored with the notification,
    so a redelivery after a crash or a retry repeats it, while a new episode
    or a reminder after ``repeat_interval`` is a different notification with a
    different key.
    """
    text = "|".join([*sorted(reported), f"{decided_at:.6f}"])
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{group_id(group_key)[:32]}:{integration}:{status.value}:{digest}"


def _common(dicts: Sequence[Mapping[str, str]]) -> dict[str, str]:
    if not dicts:
        return {}
    first = dict(dicts[0])
    return {k: v for k, v in first.items() if all(d.get(k) == v for d in dicts[1:])}


def iso(t: float | None) -> str:
    """RFC 3339 UTC; Alertmanager's zero time for ``None``."""
    if t is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def absolute_links(alert: AlertInfo, base: str) -> AlertInfo:
    """``alert`` with relative ``*_url`` annotations resolved against ``base``."""
    root = base.rstrip("/") + "/"
    changed = {
        k: urljoin(root, v)
        for k, v in alert.annotations.items()
        if k.endswith("_url") and v and not urlsplit(v).scheme
    }
    if not changed:
        return alert
    return replace(alert, annotations={**alert.annotations, **changed})
