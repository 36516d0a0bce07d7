"""Notifiers: one small module per service, all behind the :class:`Notifier` protocol.

A notifier sends one :class:`~soulwatch.alerting.message.Notification` and
either returns (the service accepted it) or raises
:class:`~soulwatch.exceptions.DeliveryError`, saying whether retrying can help
and how long the service asked to wait.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from soulwatch.alerting.message import Notification


@runtime_checkable
class Notifier(Protocol):
    """Sends one notification to one integration."""

    async def notify(self, notification: Notification) -> None:
        """Deliver ``notification``; raise ``DeliveryError`` if it was not accepted."""
        ...
