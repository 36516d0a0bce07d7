"""The alert model that rules produce and alerting delivers.

An :class:`Alert` has the shape of an alert Prometheus sends to Alertmanager:
labels, annotations, ``starts_at`` and ``ends_at`` (``None`` while it fires;
set once it has resolved). Its :attr:`~Alert.fingerprint` is computed as
Alertmanager computes it, so idempotency keys agree across both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from soulwatch.tsdb.model import Labels

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_SEPARATOR = b"\xff"


class AlertState(Enum):
    """The states of an alerting rule's alert."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


def fingerprint(labels: Labels) -> str:
    """Alertmanager's fingerprint of a label set: FNV-1a 64 over sorted names and values."""
    h = _FNV_OFFSET
    for name, value in labels:
        for chunk in (name.encode(), _SEPARATOR, value.encode(), _SEPARATOR):
            for byte in chunk:
                h ^= byte
                h = (h * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@dataclass(frozen=True)
class Alert:
    """One alert instance as sent to the alerting side.

    Times are Unix seconds. ``ends_at`` is ``None`` while the alert fires.
    """

    labels: Labels
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float | None = None
    generator_url: str = ""
    value: float = math.nan

    @property
    def fingerprint(self) -> str:
        """The Alertmanager-compatible fingerprint of the labels."""
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        """The ``alertname`` label."""
        return self.labels.get("alertname")

    def is_resolved(self, now: float) -> bool:
        """True once ``ends_at`` is set and not in the future."""
        return self.ends_at is not None and self.ends_at <= now


@runtime_checkable
class AlertSink(Protocol):
    """Where the rule evaluator sends its alerts (the router, or a remote Alertmanager)."""

    async def send(self, alerts: Sequence[Alert]) -> None:
        """Accept firing and resolved alerts; must not lose them once it returns."""
        ...
